"""A faulty microphone in the array (edge_recorder/audio/array/mic_balance.py), by failure class.

Before the balance, one dead mic of the 4-mic HAT took the shipped beam's output ~24 dB
below the healthy beam's and under the plain mix's SI-SDR, and nothing said so. Now:
matched mics change nothing (bit for bit); a silent, weak or loud mic is left out and
reported (log once, device status, `record`); a mic a few dB off is matched by a gain; the
output stays bit-exact under any framing.
"""

from __future__ import annotations

import itertools
import logging
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
import soundfile

from edge_recorder.audio.array import make_array_processor
from edge_recorder.audio.array import stage as stage_module
from edge_recorder.audio.array.beamformers import DasProcessor, MvdrProcessor
from edge_recorder.audio.array.calibrated import CalibratedBeam
from edge_recorder.audio.array.geometry import angle_deg, direction
from edge_recorder.audio.array.mic_balance import FAULT_DB, MicBalance, MicFault
from edge_recorder.audio.array.stage import MIC_FAULT_WARNING, ArrayMix, last_mic_note
from edge_recorder.audio.frames import AudioFormat
from edge_recorder.config.model import AudioConfig
from edge_recorder.status import ArrayMicLeftOut
from tests.conftest import RunCli
from tests.unit.app.test_recorder import make
from tests.unit.audio.test_array_beams import FOUR, SIX, propagate, speechlike
from tests.unit.audio.test_array_calibrated_beam import Room, si_sdr
from tests.unit.audio.test_array_calibrated_beam import room as room  # the module's fixture
from tests.unit.audio.test_array_stream import run_framed, talk

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]
WINDOW_S = 0.128  # the beams' adaptation window: 8 hops of 16 ms
EVIDENCE = 8  # windows before a verdict (1 s)


def broken(x: F32, mic: int, gain: float) -> F32:
    """x with one mic's channel scaled (0: a dead mic)."""
    out = x.copy()
    out[:, mic] *= np.float32(gain)
    return out


def feed(balance: MicBalance, levels_db: list[float], windows: int, seed: int = 0) -> list[bool]:
    """`windows` windows of per-mic band power at `levels_db` (±0.3 dB of jitter, a room's
    level moving by 20 dB); what each update returned."""
    rng = np.random.default_rng(seed)
    changed = []
    for _ in range(windows):
        room_db = rng.uniform(-70, -50)
        jitter = rng.uniform(-0.3, 0.3, len(levels_db))
        power = 10 ** ((room_db + np.array(levels_db) + jitter) / 10)
        power[np.array(levels_db) == -np.inf] = 0.0
        changed.append(balance.update(power))
    return changed


# --- the verdict (pure) -------------------------------------------------------------------------


def test_matched_mics_keep_unit_gains_and_nothing_is_left_out() -> None:
    balance = MicBalance(4, WINDOW_S)
    changed = feed(balance, [0.0, 0.0, 0.0, 0.0], 200)
    assert not any(changed)
    assert balance.decided and balance.version == 1  # the one verdict: all in
    assert balance.gains.tolist() == [1.0] * 4 and balance.live.all() and not balance.faults()


def test_no_verdict_before_a_second_of_signal() -> None:
    balance = MicBalance(4, WINDOW_S)
    feed(balance, [0.0, -25.0, 0.0, 0.0], EVIDENCE - 1)
    assert not balance.decided and balance.live.all() and balance.version == 0
    feed(balance, [0.0, -25.0, 0.0, 0.0], 1)
    assert balance.decided and [f.reason for f in balance.faults()] == ["weak"]


def test_a_mic_of_zeros_is_left_out_after_two_windows() -> None:
    """Zeros while the others hear the room is unambiguous: 256 ms, not a second."""
    balance = MicBalance(4, WINDOW_S)
    assert feed(balance, [0.0, -np.inf, 0.0, 0.0], 1) == [False]
    assert feed(balance, [0.0, -np.inf, 0.0, 0.0], 1) == [True]
    assert balance.faults() == [MicFault(1, "silent", -40.0)]


@pytest.mark.parametrize(
    ("level", "reason"), [(-np.inf, "silent"), (-20.0, "weak"), (-15.0, "weak"), (20.0, "loud")]
)
def test_a_mic_far_from_the_others_is_left_out_with_its_reason(level: float, reason: str) -> None:
    balance = MicBalance(4, WINDOW_S)
    changed = feed(balance, [0.0, 0.0, level, 0.0], 40)
    assert changed.count(True) == 1  # said once, at the verdict
    [fault] = balance.faults()
    assert (fault.index, fault.reason) == (2, reason)
    assert balance.gains[2] == 0.0 and balance.live.tolist() == [True, True, False, True]
    assert fault.describe(4).startswith(f"mic 3 of 4 {reason} (")


def test_a_mic_a_few_db_off_is_matched_by_a_gain_not_left_out() -> None:
    balance = MicBalance(4, WINDOW_S)
    feed(balance, [0.0, -6.0, 0.0, 0.0], 100)
    assert balance.live.all() and not balance.faults()
    assert balance.gains[1] == pytest.approx(10 ** (-6 / 20), rel=0.06)  # the nearest 0.5 dB
    assert balance.gains[[0, 2, 3]].tolist() == [1.0] * 3


def test_a_mic_comes_back_only_once_well_within_range() -> None:
    """Hysteresis: left out beyond FAULT_DB, taken back within CLEAR_DB, not in between."""
    balance = MicBalance(4, WINDOW_S)
    feed(balance, [0.0, 0.0, 0.0, -30.0], 60)
    assert not balance.live[3]
    feed(balance, [0.0, 0.0, 0.0, -(FAULT_DB - 2)], 300)  # between the two thresholds
    assert not balance.live[3]
    changed = feed(balance, [0.0, 0.0, 0.0, 0.0], 300)
    assert balance.live.all() and changed.count(True) >= 1 and not balance.faults()


def test_windows_of_a_silent_array_tell_nothing() -> None:
    balance = MicBalance(4, WINDOW_S)
    for _ in range(50):
        assert balance.update(np.zeros(4)) is False
    assert balance.windows == 0 and not balance.decided


def test_of_two_mics_the_dead_one_is_left_out_and_the_other_kept() -> None:
    balance = MicBalance(2, WINDOW_S)
    feed(balance, [0.0, -np.inf], 20)
    assert balance.live.tolist() == [True, False]
    assert [f.reason for f in balance.faults()] == ["silent"]


def test_of_two_mics_a_steady_loud_one_is_left_out_not_the_one_hearing_the_talker() -> None:
    """Two mics: the plain median is their mean, so a loud faulty mic and a healthy one are
    the same distance from it. The healthy one's level comes and goes with speech; a hum or
    an oscillating preamp's does not."""
    rng = np.random.default_rng(2)
    for loud_is in (0, 1):
        balance = MicBalance(2, WINDOW_S)
        for _ in range(40):
            talk_db = -60 + rng.choice([0.0, 12.0])  # speech comes and goes
            power = np.array([0.0, 0.0])
            power[1 - loud_is] = 10 ** (talk_db / 10)
            power[loud_is] = 10 ** ((-40 + rng.uniform(-0.3, 0.3)) / 10)  # steady, louder
            balance.update(power)
        assert [(f.index, f.reason) for f in balance.faults()] == [(loud_is, "loud")]
    balance = MicBalance(2, WINDOW_S)  # a blocked port: the same talker, 20 dB down
    for _ in range(40):
        talk_db = -60 + rng.choice([0.0, 12.0])
        balance.update(np.array([10 ** (talk_db / 10), 10 ** ((talk_db - 20) / 10)]))
    assert [(f.index, f.reason) for f in balance.faults()] == [(1, "weak")]


@pytest.mark.parametrize("channels", [2, 4])
def test_a_mic_that_dies_mid_recording_is_left_out_and_the_others_kept(channels: int) -> None:
    balance = MicBalance(channels, WINDOW_S)
    healthy = [0.0] * channels
    feed(balance, healthy, 40)
    assert balance.decided and balance.live.all()
    changed = feed(balance, [*healthy[:-1], -np.inf], 40)
    assert changed.count(True) == 1
    assert [(f.index, f.reason) for f in balance.faults()] == [(channels - 1, "silent")]


# --- the beams with a faulty mic ----------------------------------------------------------------


def level_db(x: F32) -> float:
    return float(10 * np.log10(np.mean(x.astype(np.float64) ** 2)))


@pytest.mark.parametrize(("gain", "reason"), [(0.0, "silent"), (0.1, "weak")])
def test_the_shipped_beam_keeps_its_level_and_beats_the_mix_with_a_dead_mic(
    room: Room, gain: float, reason: str
) -> None:
    """In the simulated exam room, the 4-mic HAT's shipped kind: the healthy beam, the beam
    with mic 2 dead (or 20 dB down), and the plain mix of the same broken capture."""
    x, ref = room.captures["spot"], room.references["spot"]
    healthy = make_array_processor("mvdr-wpe-postfilter", FOUR, 16000, 2)
    beam = make_array_processor("mvdr-wpe-postfilter", FOUR, 16000, 2)
    assert isinstance(beam, MvdrProcessor)
    good = run_framed(healthy, x, [1280])
    out = run_framed(beam, broken(x, 1, gain), [1280])
    mix = broken(x, 1, gain).mean(axis=1)
    assert [(f.index, f.reason) for f in beam.balance.faults()] == [(1, reason)]
    skip = 2 * 16000  # past the first second's verdict
    assert level_db(out[skip:]) > level_db(good[skip:]) - 3.0  # was -24 dB before the balance
    delay = beam.delay_samples
    assert si_sdr(ref, out, delay) > si_sdr(ref, mix, 0) + 1.0


def test_a_mic_6_db_low_keeps_the_beams_level(room: Room) -> None:
    x = room.captures["spot"]
    good = run_framed(make_array_processor("mvdr-postfilter", FOUR, 16000, 2), x, [1280])
    beam = make_array_processor("mvdr-postfilter", FOUR, 16000, 2)
    assert isinstance(beam, MvdrProcessor)
    out = run_framed(beam, broken(x, 3, 0.5), [1280])
    assert beam.balance.live.all() and beam.balance.gains[3] < 0.6
    skip = 2 * 16000
    assert level_db(out[skip:]) > level_db(good[skip:]) - 2.0  # was -8 dB before the balance


def test_the_calibrated_beam_runs_its_blind_fallback_without_a_mic(room: Room) -> None:
    x, ref = room.captures["spot"], room.references["spot"]
    beam = CalibratedBeam(FOUR, 16000, 2, room.calibration)
    out = run_framed(beam, broken(x, 0, 0.0), [1280])
    assert not beam.balance.live[0]
    assert beam.blind_windows >= beam.windows - EVIDENCE - 1  # blind from the verdict on
    assert si_sdr(ref, out, beam.delay_samples) > si_sdr(ref, broken(x, 0, 0.0).mean(axis=1), 0)


def test_with_one_mic_left_the_post_filter_stands_aside() -> None:
    """A 2-mic board with a dead mic: its one-mic "beam" gets no post-filter (one-mic noise
    suppression cost 0.017 STOI against the plain mix on the far-field set)."""
    pair = np.array([[-0.029, 0.0, 0.0], [0.029, 0.0, 0.0]])
    rng = np.random.default_rng(6)
    x = propagate(speechlike(3 * 16000, rng), pair, direction(60, 10)) * 0.05
    healthy = (x + 0.002 * rng.standard_normal(x.shape)).astype(np.float32)
    for x, live in ((healthy, 2), (broken(healthy, 1, 0.0), 1)):
        filtered = make_array_processor("mvdr-postfilter", pair, 16000, 2)
        plain = make_array_processor("mvdr", pair, 16000, 2)
        out, ref = run_framed(filtered, x, [1280]), run_framed(plain, x, [1280])
        assert isinstance(filtered, MvdrProcessor) and filtered.balance.live_count == live
        after = 16000  # past the verdict and the delay
        assert np.array_equal(out[after:], ref[after:]) == (live == 1)


@pytest.mark.parametrize("kind", ["das", "mvdr-postfilter", "mvdr-wpe-postfilter"])
def test_any_framing_gives_the_same_output_with_a_dead_mic(kind: str) -> None:
    def framed(x: F32, sizes: list[int]) -> F32:
        processor = make_array_processor(kind, FOUR, 16000, 2)
        out = run_framed(processor, x, sizes)
        assert isinstance(processor, DasProcessor) and not processor.balance.live[2]
        return out

    x = broken(talk(FOUR, 3.0, seed=11), 2, 0.0)
    whole = framed(x, [x.shape[0]])
    for sizes in ([160, 1337, 7], [4096]):
        assert np.array_equal(framed(x, sizes), whole)
    start = x[:20000]  # one sample at a time is slow: the first 1.25 s, past the verdict
    assert np.array_equal(framed(start, [1]), framed(start, [1000]))


@pytest.mark.parametrize(("name", "positions"), [("four", FOUR), ("six", SIX)])
def test_the_tracker_finds_the_talker_on_the_mics_left(name: str, positions: F64) -> None:
    rng = np.random.default_rng(4)
    n = 3 * 16000
    u = direction(147, 12)
    x = propagate(speechlike(n, rng), positions, u) * 0.05
    x = (x + 0.002 * rng.standard_normal(x.shape)).astype(np.float32)
    x[:, 0] = 0.5 * rng.standard_normal(n)  # mic 1 oscillates: loud, and no talker in it
    beam = make_array_processor("das", positions)
    assert isinstance(beam, DasProcessor)
    beam.process(x)
    assert [f.reason for f in beam.balance.faults()] == ["loud"]
    found = beam.tracker.direction  # a flat array's elevation is coarse (doa.py): azimuth
    assert beam.tracker.steered and angle_deg(found, u) < 15.0
    assert abs(np.degrees(np.arctan2(found[1], found[0])) - 147.0) < 5.0


# --- what the device says -----------------------------------------------------------------------

SQUARE_MM = [(x * 1000, y * 1000, z * 1000) for x, y, z in FOUR.tolist()]
FMT = AudioFormat(16000, 4, "S16_LE")


@pytest.fixture(autouse=True)
def _fresh_stage(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(stage_module, "_last_mic", [([], 0)])


def stage_run(x: F32, kind: str = "mvdr-postfilter") -> ArrayMix:
    config = AudioConfig.model_validate(
        {"channels": 4, "mic_positions_mm": SQUARE_MM, "array_processing": kind}
    )
    mix = ArrayMix(config, FMT, 1.0, 16000)
    cuts = [0, 999, 5000, 17001, x.shape[0]]
    for i, (a, b) in enumerate(itertools.pairwise(cuts)):
        mix.shape(x[a:b], last=i == len(cuts) - 2)
    return mix


async def test_a_left_out_mic_is_logged_once_and_shown_in_the_status(
    caplog: pytest.LogCaptureFixture,
) -> None:
    recorder, *_ = make()
    speech = talk(FOUR, 2.0, seed=5)
    assert MIC_FAULT_WARNING not in recorder.status().warnings
    with caplog.at_level(logging.INFO):
        mix = stage_run(broken(speech, 1, 0.0))
        stage_run(broken(speech, 1, 0.0))  # the next recording: the same news, not logged
    note = mix.mic_note
    assert note is not None and note == last_mic_note()
    assert note.startswith("array mic 2 of 4 silent (") and "left out of the beam" in note
    assert MIC_FAULT_WARNING in recorder.status().warnings and len(MIC_FAULT_WARNING) <= 64
    assert recorder.status().mic.array_left_out == [ArrayMicLeftOut(mic=2, reason="silent")]
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warned == [note]
    with caplog.at_level(logging.INFO):
        healthy = stage_run(speech)  # the mic is back (a loose connector pushed home)
    assert healthy.mic_note is None and last_mic_note() is None
    assert MIC_FAULT_WARNING not in recorder.status().warnings
    assert recorder.status().mic.array_left_out == []
    assert "array mics all in the beam again" in caplog.text


def test_the_plain_mix_has_no_balance_and_says_nothing() -> None:
    mix = stage_run(broken(talk(FOUR, 2.0, seed=5), 1, 0.0), kind="average")
    assert mix.mic_note is None and last_mic_note() is None


def test_record_names_the_mic_left_out(run_cli: RunCli, tmp_path: Path) -> None:
    """The mic test a technician runs after mounting the device says which mic is faulty."""
    wav = tmp_path / "take.wav"
    soundfile.write(wav, broken(talk(FOUR, 3.0, seed=8), 3, 0.0), 16000, subtype="PCM_16")
    config = tmp_path / "config.toml"
    config.write_text(
        f"[audio]\nchannels = 4\nmic_positions_mm = {[list(p) for p in SQUARE_MM]}\n"
        f'source = "wav"\nwav_path = "{wav}"\nspeed = 0\narray_processing = "mvdr-postfilter"\n'
    )
    result = run_cli("record", "--seconds", "3", str(tmp_path / "out.wav"), "--config", str(config))
    assert result.returncode == 0, result.stderr
    assert "mics:     mvdr-postfilter\n" in result.stdout
    assert "array mic 4 of 4 silent (-40 dB): left out of the beam" in result.stdout
    assert "<- faulty mic?" in result.stdout
