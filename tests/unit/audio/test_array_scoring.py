"""The room check's pure logic (`audio.array.scoring`, `audio.array.testvoice`): the test
voice is speech-like where the beams look, the played signal is found in a simulated room's
take whatever the loudspeaker's clock, the room's noise is measured, and each kind is scored
on exactly what the pipeline would make of the take. Grouped by what can go wrong."""

from __future__ import annotations

import importlib
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
import soxr

from devtools.farfield import geometry
from edge_recorder.audio.array import scoring
from edge_recorder.audio.array.geometry import SPEED_OF_SOUND
from edge_recorder.audio.array.stage import ArrayMix
from edge_recorder.audio.array.testvoice import synthetic_voice
from edge_recorder.audio.frames import AudioFormat
from edge_recorder.config.loader import build_config
from tests.unit.test_calibrate_array_cli import BOARD_M, SPOT_M, SQUARE_MM, room_recording

F64 = npt.NDArray[np.float64]
RATE = 16000
LEAD = 2 * RATE


def _bands_db(x: F64) -> dict[tuple[int, int], float]:
    power = np.abs(np.fft.rfft(x)) ** 2
    freqs = np.fft.rfftfreq(x.size, 1 / RATE)
    edges = [(0, 1000), (1000, 2000), (2000, 4000), (4000, 8000)]
    total = float(power.sum())
    return {
        (lo, hi): 10 * np.log10(power[(freqs >= lo) & (freqs < hi)].sum() / total)
        for lo, hi in edges
    }


def _direct_delay() -> int:
    """Samples from the loudspeaker to the array centre in the simulation (whose impulse
    responses start half a fractional-delay filter late)."""
    pra: Any = importlib.import_module("pyroomacoustics")
    centre = geometry.board_to_room(BOARD_M).mean(axis=0)
    path = float(np.linalg.norm(np.subtract(SPOT_M, centre))) / SPEED_OF_SOUND * RATE
    return round(path) + int(pra.constants.get("frac_delay_length")) // 2


def _take(voice: F64, ppm: float = 0.0, noise: float = 0.3, seed: int = 1) -> F64:
    """(N, 4) the board hearing `voice` played after a 2 s lead-in by a loudspeaker whose
    clock runs `ppm` fast (its take longer), with white noise at `noise` x the signal's RMS."""
    played = np.concatenate([np.zeros(LEAD), voice, np.zeros(RATE)])
    if ppm:
        played = soxr.resample(played, RATE, RATE * (1 + ppm * 1e-6), quality="VHQ")
    x = room_recording(SPOT_M, played, seed)
    rms = float(np.sqrt(np.mean(x[LEAD : LEAD + voice.size] ** 2)))
    return x + noise * rms * np.random.default_rng(seed).standard_normal(x.shape)


@pytest.fixture(scope="module")
def voice() -> F64:
    return synthetic_voice(12.0)


# --- the test voice -------------------------------------------------------------------------


def test_the_test_voice_is_the_same_every_time_and_differs_by_seed() -> None:
    a, b, c = synthetic_voice(6.0), synthetic_voice(6.0), synthetic_voice(6.0, seed=1)
    assert a.size == 6 * RATE
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)
    assert float(np.max(np.abs(a))) == pytest.approx(0.5)


def test_the_test_voice_has_speech_pauses_for_the_noise_estimate(voice: F64) -> None:
    frames = voice[: voice.size // 256 * 256].reshape(-1, 256)
    silent = (frames**2).mean(axis=1) < 1e-8
    runs, run = [], 0
    for quiet in silent:
        run = run + 1 if quiet else 0
        if run == 25:  # 0.4 s of silence
            runs.append(run)
    assert 0.35 < 1 - silent.mean() < 0.75  # talking about half the time, as in a conversation
    assert len(runs) >= voice.size / RATE / 4  # a pause between phrases every few seconds


def test_the_test_voice_carries_energy_where_the_beams_find_directions(voice: F64) -> None:
    """Regression: a cascade of formant resonances put the 2-4 kHz band ~30 dB down (speech:
    ~12 dB), so the direction tracker erred by 25° in a room and the beams gained nothing."""
    bands = _bands_db(voice)
    assert -16.0 < bands[(2000, 4000)] < -6.0
    assert bands[(0, 1000)] > bands[(1000, 2000)] > bands[(2000, 4000)] > bands[(4000, 8000)]


def test_the_test_voice_length_is_bounded() -> None:
    with pytest.raises(ValueError, match="1-600 s"):
        synthetic_voice(0.5)


# --- finding the signal -----------------------------------------------------------------------


@pytest.mark.parametrize("ppm", [0.0, 60.0, -120.0, 300.0])
def test_the_signal_is_found_and_the_loudspeaker_clock_measured(voice: F64, ppm: float) -> None:
    take = _take(voice, ppm)
    location = scoring.locate(voice, take.mean(axis=1))
    assert location.drift_ppm == pytest.approx(ppm, abs=5.0)
    # where the direct sound of the signal's middle lands, less half the drifted length
    assert abs(location.offset - (LEAD + _direct_delay())) <= 3 + abs(ppm) * 1e-6 * voice.size
    assert location.match > 0.4
    assert location.reference.size == pytest.approx(voice.size * (1 + ppm * 1e-6), abs=2)


def test_a_long_signal_from_a_fast_clock_is_found_by_its_first_seconds() -> None:
    """Regression: 120 s at 300 ppm smears the whole signal's correlation peak over ~580
    samples, to a prominence of 14 (needs 15): "not found". Its first 8 s stay sharp."""
    voice = synthetic_voice(120.0)
    location = scoring.locate(voice, _take(voice, 300.0).mean(axis=1))
    assert location.drift_ppm == pytest.approx(300.0, abs=2.0)
    assert location.match > 0.5


def test_without_the_drift_taken_out_a_phone_clock_ruins_the_scores(voice: F64) -> None:
    """Why the drift is measured: 80 ppm over 12 s costs the high bins their alignment."""
    take = _take(voice, 80.0).astype(np.float32)
    audio = build_config(
        {"audio": {"channels": 4, "mic_positions_mm": SQUARE_MM}}, environ={}
    ).audio
    location = scoring.locate(voice, take.mean(axis=1, dtype=np.float64))
    naive = scoring.Location(location.offset, location.match, 0.0, voice)
    right = scoring.score_kinds(take, location, audio, ["average"])[0].si_sdr_db
    wrong = scoring.score_kinds(take, naive, audio, ["average"])[0].si_sdr_db
    assert right > wrong + 3.0


def test_noise_alone_is_not_taken_for_the_signal(voice: F64) -> None:
    noise = np.random.default_rng(3).standard_normal(voice.size + 4 * RATE)
    with pytest.raises(scoring.NotFound, match="not found in the recording"):
        scoring.locate(voice, noise)


def test_another_voice_is_not_taken_for_the_signal(voice: F64) -> None:
    other = _take(synthetic_voice(12.0, seed=5)).mean(axis=1)
    with pytest.raises(scoring.NotFound, match="not found in the recording"):
        scoring.locate(voice, other)


def test_a_take_that_stops_in_the_middle_of_the_signal_says_so(voice: F64) -> None:
    take = _take(voice).mean(axis=1)
    cut = np.concatenate([take[: LEAD + voice.size // 2], 1e-3 * take[: voice.size]])
    with pytest.raises(scoring.NotFound, match="only part of the signal"):
        scoring.locate(voice, cut)


def test_a_take_shorter_than_the_signal_says_so(voice: F64) -> None:
    with pytest.raises(scoring.NotFound, match="shorter than the signal"):
        scoring.locate(voice, np.zeros(voice.size - 1))


# --- the room's noise -------------------------------------------------------------------------


def test_the_snr_is_the_signal_over_the_lead_in_noise(voice: F64) -> None:
    rng = np.random.default_rng(4)
    active = np.abs(voice) > 0
    level = float(np.sqrt(np.mean(voice[active] ** 2)))
    mix = np.concatenate([np.zeros(LEAD), voice, np.zeros(RATE)])
    noise_rms = level * 10 ** (-12 / 20)
    mix += noise_rms * rng.standard_normal(mix.size)
    location = scoring.Location(LEAD, 1.0, 0.0, voice)
    noise_dbfs, snr = scoring.noise_and_snr(mix, location)
    assert noise_dbfs == pytest.approx(20 * np.log10(noise_rms), abs=0.3)
    assert snr == pytest.approx(12.0, abs=1.5)  # activity by 16 ms frames, not by sample


def test_without_a_lead_in_the_noise_is_not_guessed(voice: F64) -> None:
    location = scoring.Location(RATE // 4, 1.0, 0.0, voice)
    assert scoring.noise_and_snr(np.zeros(voice.size + RATE), location) == (None, None)


# --- scoring the kinds ------------------------------------------------------------------------


def test_each_kind_is_scored_on_what_the_pipeline_makes_of_the_take(voice: F64) -> None:
    """The scored output is the daemon's: ArrayMix fed capture periods gives the same samples."""
    take = _take(voice).astype(np.float32)
    config = {"audio": {"channels": 4, "mic_positions_mm": SQUARE_MM, "array_batch_hops": 2}}
    audio = build_config(config, environ={}).audio
    batch, note = scoring.process(take, audio.model_copy(), "mvdr-wpe-postfilter")
    assert note is None
    fmt = AudioFormat(rate=RATE, channels=4, sample_format="S32_LE")
    live = ArrayMix(
        audio.model_copy(update={"array_processing": "mvdr-wpe-postfilter"}), fmt, 1.0, RATE
    )
    periods = [take[s : s + 1280] for s in range(0, take.shape[0], 1280)]
    parts = [live.shape(p, last=i == len(periods) - 1) for i, p in enumerate(periods)]
    assert np.array_equal(np.concatenate(parts), batch)
    assert batch.shape == (take.shape[0],)


def test_the_beams_gain_over_the_plain_mix_in_a_noisy_room(voice: F64) -> None:
    take = _take(voice, noise=1.0).astype(np.float32)
    audio = build_config(
        {"audio": {"channels": 4, "mic_positions_mm": SQUARE_MM}}, environ={}
    ).audio
    location = scoring.locate(voice, take.mean(axis=1, dtype=np.float64))
    kinds = ["average", "das", "mvdr-wpe-postfilter"]
    scores = {s.kind: s for s in scoring.score_kinds(take, location, audio, kinds)}
    plain = scores["average"]
    # the plain mix scored directly: the average kind is the equal mix of the mics
    ref = location.reference
    mix = take.mean(axis=1)
    lag = scoring.best_lag(ref, mix, location.offset, scoring.KIND_SEARCH)
    assert plain.si_sdr_db == pytest.approx(
        scoring.si_sdr(*scoring.aligned(ref, mix, lag)), abs=0.01
    )
    assert all(s.stoi is not None for s in scores.values())
    # noise at the signal's level in every mic, RT60 0.3 s: the echo bounds what a beam buys
    # (measured: das +0.28 dB, the shipped kind +1.46 dB)
    assert scores["das"].si_sdr_db > plain.si_sdr_db + 0.1
    assert scores["mvdr-wpe-postfilter"].si_sdr_db > plain.si_sdr_db + 1.0
