"""The far-field oracle ceilings (devtools/farfield/oracle.py): the least-squares filter finds a
known answer, its multi-frame form reaches what one frame cannot, and no oracle row ever
counts as a device candidate in the goals."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import numpy as np
import numpy.typing as npt
import pytest

from devtools.farfield import candidates, evaluate, metrics, oracle, plot
from edge_recorder.audio.array.stft import HOP, NFFT

N = 3 * 16000
F32 = npt.NDArray[np.float32]


def _source(seed: int = 0) -> F32:
    """Speech-like test signal: noise with a slowly varying envelope (gaps included)."""
    rng = np.random.default_rng(seed)
    envelope = np.repeat(np.abs(rng.standard_normal(N // 1600 + 1)), 1600)[:N]
    return np.asarray(rng.standard_normal(N) * envelope * 0.1, np.float32)


def _delayed(x: F32, samples: int) -> F32:
    return np.concatenate([np.zeros(samples, np.float32), x[: x.size - samples]])


def test_stft_and_istft_reconstruct_the_signal_exactly() -> None:
    x = _source(1)[:10_000]  # not a whole number of hops
    back = oracle.istft(oracle.stft(x), x.size)
    np.testing.assert_allclose(back, x, atol=1e-6)
    assert oracle.stft(np.stack([x, x])).shape[0] == 2  # leading axes are kept


def test_least_squares_recovers_delayed_scaled_copies() -> None:
    ref = _source()
    capture = np.stack([0.5 * _delayed(ref, 3), -0.8 * _delayed(ref, 9)], axis=1)
    output, weights = oracle.least_squares(capture, ref)
    assert weights.shape == (NFFT // 2 + 1, 2)
    assert metrics.si_sdr(ref, output) > 30
    # The plain average of the two copies is far from it: the oracle is not trivially good.
    assert metrics.si_sdr(ref, capture.mean(axis=1)) < 10


def test_a_late_echo_needs_past_frames_and_they_remove_it() -> None:
    """ref + an echo 700 samples (2.7 hops) later: one frame per bin cannot undo it, a
    multi-frame filter whose taps reach past the echo can (the late-reverb ceiling's point)."""
    ref = _source(2)
    echoed = ref + 0.6 * _delayed(ref, 700)
    capture = np.stack([echoed, _delayed(echoed, 2)], axis=1)
    one = metrics.si_sdr(ref, oracle.least_squares(capture, ref, taps=1)[0])
    many = metrics.si_sdr(ref, oracle.least_squares(capture, ref, taps=8)[0])
    held_out = metrics.si_sdr(ref, oracle.least_squares(capture, ref, taps=8, folds=2)[0])
    assert one < 10
    assert many > one + 10 and many > 15  # the STFT grid, not the echo, limits it
    assert held_out > one + 8  # a fixed echo: weights fitted on one half work on the other


def test_per_talker_filters_follow_the_turns() -> None:
    """Two 'talkers' with opposite polarity at one mic: one filter for both must compromise,
    one per talker (switching on `who`) recovers each."""
    ref = _source(3)
    half = N // 2
    channel = ref.copy()
    channel[half:] *= -1
    capture = np.stack([channel, 0.3 * _source(4)], axis=1)
    frames = oracle.stft(ref).shape[0]
    who = (np.arange(frames) * HOP >= half).astype(np.int64)
    single = metrics.si_sdr(ref, oracle.least_squares(capture, ref)[0])
    switched = metrics.si_sdr(ref, oracle.least_squares(capture, ref, who=who)[0])
    assert single < 5 and switched > 20


def test_talker_frames_keep_a_turns_tail_with_its_talker() -> None:
    dry = np.zeros((2, 16000), np.float32)
    dry[0, 1000:4000] = 0.1
    dry[1, 9000:12000] = 0.1
    frames = oracle.stft(dry[0]).shape[0]
    who = oracle.talker_frames(dry, frames)
    hop = HOP
    assert who[4000 // hop + 5] == 0  # silence after talker 0: still talker 0 (the tail)
    assert who[10000 // hop] == 1
    assert who[-1] == 1


def _row(
    name: str, si_sdr: float, stoi: float, profile: str, snr_db: float = 5.0
) -> evaluate.Result:
    return evaluate.Result(
        profile=profile, rt60_s=0.5, snr_db=snr_db, candidate=name, si_sdr_db=si_sdr,
        si_sdr_early_db=si_sdr, stoi=stoi, f1_silero=0.9, f1_webrtc=0.8,
        cpu_s_per_audio_s=0.5, lag_samples=0,
    )  # fmt: skip


def test_oracle_rows_are_never_goal_candidates() -> None:
    results = []
    for profile in evaluate.GOAL_PROFILES:
        results += [
            _row(candidates.AVERAGE, -5.0, 0.6, profile),
            _row("array:mvdr", -3.0, 0.65, profile),
            _row(f"{oracle.PREFIX}MWF (per-bin LS, 1 frame)", 5.0, 0.9, profile),
        ]
    goals = evaluate.goals(results, "")
    assert goals and not any(oracle.PREFIX in g["goal"] for g in goals)
    assert {g["goal"].split(": ", 1)[0] for g in goals} == {"array:mvdr"}
    assert oracle.is_oracle(candidates.ORACLE) and not oracle.is_oracle("array:mvdr")


@pytest.mark.parametrize("talker", [0, 1])
def test_true_steering_is_relative_to_the_array_centre(talker: int) -> None:
    """At 0 Hz every mic gets the 1/r level relative to the centre, and the phase grows with
    frequency by the extra path: the mic nearer the talker leads."""
    from devtools.farfield import geometry, scene

    positions = geometry.board_positions_m("respeaker-4mic-array")
    fake = scene.Scene(
        spec=scene.SceneSpec("respeaker-4mic-array", 0.3, 1.0, seed=1),
        speech=np.zeros((4, 1), np.float32), noise=np.zeros((4, 1), np.float32),
        reference=np.zeros(1, np.float32), early=np.zeros(1, np.float32),
        dry=np.zeros((2, 1), np.float32), labels=np.zeros(1, bool), positions_m=positions,
    )  # fmt: skip
    a = oracle.steering(fake, talker, np.asarray([0.0, 1000.0]))
    source = np.asarray(geometry.place_talkers(1)[talker].position())
    mics = geometry.board_to_room(positions)
    distance = np.linalg.norm(mics - source, axis=1)
    centre = np.linalg.norm(source - np.asarray(geometry.DEVICE_M))
    np.testing.assert_allclose(np.abs(a[0]), centre / distance)
    nearest = int(np.argmin(distance))
    assert np.angle(a[1, nearest]) > 0  # arrives before the centre: a phase lead


def test_the_plot_draws_the_two_plain_ceilings_dotted_and_leaves_the_rest_to_the_table() -> None:
    held_out = f"{oracle.PREFIX}MWF per talker, held out"
    names = (candidates.AVERAGE, "array:mvdr", *oracle.PLOTTED_CEILINGS, held_out)
    results = [
        _row(name, value, 0.7, "respeaker-4mic-array", snr)
        for name in names
        for snr, value in ((5.0, -3.0), (20.0, 1.0))
    ]
    svg = plot.farfield_svg(results)
    root = ET.fromstring(svg)
    ns = "{http://www.w3.org/2000/svg}"
    legend = [t.text for t in root.iter(f"{ns}text")]
    assert all(name in legend for name in names[:-1]) and held_out not in legend
    dotted = [p for p in root.iter(f"{ns}polyline") if p.get("stroke-dasharray") == "1,3"]
    assert len(dotted) == 2 * len(oracle.PLOTTED_CEILINGS)  # two panels each


def test_the_no_noise_rows_score_the_speech_alone_and_line_the_beam_up() -> None:
    """The "no noise" ceilings get the capture minus its noise: the average row is the speech's
    own average, and the blind beam's row is advanced by its declared delay, so it scores
    like a candidate (a beam output left delayed would score near -20 dB here)."""
    from devtools.farfield import geometry, scene

    positions = geometry.board_positions_m("respeaker-4mic-array")
    ref = _source(5)
    speech = np.stack([ref] * 4, axis=1)  # broadside: every mic hears the same
    noise = np.asarray(np.random.default_rng(6).standard_normal(speech.shape) * 0.05, np.float32)
    fake = scene.Scene(
        spec=scene.SceneSpec("respeaker-4mic-array", 0.3, 3.0, seed=1),
        speech=speech.T, noise=noise.T, reference=ref, early=ref,
        dry=np.stack([ref, np.zeros_like(ref)]), labels=np.ones(N // 160, bool),
        positions_m=positions,
    )  # fmt: skip
    rows = dict(oracle.ceilings(fake, speech + noise, noise))
    average = rows[oracle.NO_NOISE_AVERAGE]()
    np.testing.assert_allclose(average, ref, atol=1e-6)
    beam = rows[oracle.NO_NOISE_BEAM]()
    assert beam.shape == ref.shape
    assert metrics.si_sdr(ref[: N - 4000], beam[: N - 4000]) > 15  # lined up, not delayed
