"""Sweep calibration and the calibrated beam (devtools/farfield/calibration.py): the measured
responses do not depend on when the sweep started, the loudspeaker's colour is not learnt into
the spot, the beam picks the spot a talker is at and gives the same output under any chunking."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from devtools.farfield import calibration, candidates
from edge_recorder.audio.array import spots

F64 = npt.NDArray[np.float64]
RATE = 16000


def _responses(delays: list[float], seed: int, length: int = 1200) -> F64:
    """(M, length) toy room responses: a direct arrival at each (fractional) delay, then a
    reflection 5 ms later and a decaying random tail."""
    rng = np.random.default_rng(seed)
    freqs = np.fft.rfftfreq(length)
    out = []
    for d in delays:
        spectrum = np.exp(-2j * np.pi * freqs * d) + 0.5 * np.exp(-2j * np.pi * freqs * (d + 80))
        tail = rng.standard_normal(length) * np.exp(-np.arange(length) / 300.0) * 0.05
        tail[: int(d) + 100] = 0.0
        out.append(np.fft.irfft(spectrum, length) + tail)
    return np.asarray(out)


def _speaker(x: F64) -> F64:
    """A coloured loudspeaker: a short FIR with a strong tilt (what must not be learnt)."""
    taps = np.array([1.0, -0.6, 0.25, 0.1])
    return np.asarray([np.convolve(row, taps)[: row.size] for row in x])


def _record(rirs: F64, played: F64, start: int) -> F64:
    emitted = np.concatenate([np.zeros(start), played, np.zeros(RATE // 2)])
    return np.asarray([np.convolve(emitted, r)[: emitted.size] for r in rirs])


def test_measured_responses_do_not_depend_on_when_the_sweep_started() -> None:
    rirs = _responses([100.0, 103.5, 107.0, 103.5], seed=1)
    played = spots.sweep(1.0)
    early = spots.measure_responses(_record(rirs, played, 1000), played)
    late = spots.measure_responses(_record(rirs, played, 7777), played)
    np.testing.assert_allclose(early, late, atol=1e-6 * np.abs(early).max())
    # the reflection 5 ms after the direct sound is found at half its level
    env = np.abs(early[0])
    direct = int(np.argmax(env))
    assert env[direct + 78 : direct + 83].max() == pytest.approx(0.5 * env[direct], rel=0.15)


def test_the_loudspeakers_colour_is_not_learnt_into_the_spot() -> None:
    rirs = _responses([100.0, 103.5, 107.0, 103.5], seed=2)
    plain = calibration.spot_statistics([rirs])
    coloured = calibration.spot_statistics([_speaker(rirs)])
    f = np.arange(plain.h.shape[0]) * RATE / 512
    band = (f > 300) & (f < 6000)
    error = np.linalg.norm(coloured.h[band] - plain.h[band], axis=1)
    assert np.median(error / np.linalg.norm(plain.h[band], axis=1)) < 0.05
    # and h is relative to the direct sound at the centre: the direct arrival has gain ~1
    assert np.median(np.abs(plain.h[band]).mean(axis=1)) == pytest.approx(1.0, abs=0.6)
    np.testing.assert_allclose(plain.arrivals_s * RATE, [-3.5, 0.0, 3.5, 0.0], atol=0.2)


def _scene(spots: list[F64], talker: int, seconds: float = 3.0) -> npt.NDArray[np.float32]:
    """(N, M) a speech-like burst train from spot `talker` plus weak white noise."""
    rng = np.random.default_rng(5)
    n = int(seconds * RATE)
    source = rng.standard_normal(n) * (np.sin(np.arange(n) / RATE * 2 * np.pi * 1.5) > 0)
    heard = np.asarray([np.convolve(source, r)[:n] for r in spots[talker]])
    noise = rng.standard_normal(heard.shape) * 0.05 * heard.std()
    return np.asarray((heard + noise).T * 0.05, np.float32)


@pytest.fixture(scope="module")
def two_spots() -> tuple[list[F64], list[calibration.Spot]]:
    rirs = [_responses([100.0, 104.0, 108.0, 104.0], 3), _responses([108.0, 104.0, 100.0, 96.0], 4)]
    return rirs, [calibration.spot_statistics([r]) for r in rirs]


@pytest.mark.parametrize("talker", [0, 1])
def test_the_beam_picks_the_spot_the_talker_is_at(
    two_spots: tuple[list[F64], list[calibration.Spot]], talker: int
) -> None:
    rirs, spots = two_spots
    beam = calibration.CalibratedBeam(spots, "mwf")
    candidates.run(beam, _scene(rirs, talker))
    assert beam.choices[-1] == talker
    assert np.mean(np.asarray(beam.choices[len(beam.choices) // 2 :]) == talker) > 0.9


@pytest.mark.parametrize("design", calibration.DESIGNS)
def test_the_beam_gives_the_same_output_under_any_chunking(
    two_spots: tuple[list[F64], list[calibration.Spot]], design: str
) -> None:
    rirs, spots = two_spots
    capture = _scene(rirs, 1, 2.0)
    whole, _ = candidates.run(calibration.CalibratedBeam(spots, design), capture, 1920)
    odd, _ = candidates.run(calibration.CalibratedBeam(spots, design), capture, 333)
    np.testing.assert_array_equal(whole, odd)
    assert np.abs(whole).max() > 0


def test_an_unknown_design_is_refused(two_spots: tuple[list[F64], list[calibration.Spot]]) -> None:
    with pytest.raises(ValueError, match="design"):
        calibration.CalibratedBeam(two_spots[1], "lcmv")


def test_a_calibration_file_round_trips(
    tmp_path: Path, two_spots: tuple[list[F64], list[calibration.Spot]]
) -> None:
    spots = two_spots[1]
    positions = np.zeros((4, 3))
    calibration.save(tmp_path / "cal.npz", spots, positions)
    back, where = calibration.load(tmp_path / "cal.npz")
    assert len(back) == 2
    np.testing.assert_array_equal(back[1].psi, spots[1].psi)
    np.testing.assert_array_equal(where, positions)
