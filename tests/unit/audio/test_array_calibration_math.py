"""Measuring a talker spot (edge_recorder/audio/array/spots.py): a synthetic recording of the
sweep through known responses (pure delays from a direction, an echo, an unknown start, a
little noise) must give back those responses, the geometry's arrival times and, at a high
direct-to-reverberant ratio, the free-field steering; no sweep in the recording is refused."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest

from edge_recorder.audio.array.calibration_file import CalibrationError
from edge_recorder.audio.array.geometry import arrival_times, direction
from edge_recorder.audio.array.spots import (
    SWEEP_BAND_HZ,
    direct_path,
    measure_responses,
    spot_from_responses,
    sweep,
    sweep_snr_db,
)
from tests.unit.audio.test_array_beams import FOUR, SIX

F64 = npt.NDArray[np.float64]
RATE = 16000
LENGTH = 2400
INNER_BAND_HZ = (200.0, 6500.0)
DIRECT_AT = 300.0  # samples: the direct sound's arrival at the array centre


def responses(positions: F64, echo: float, seed: int = 0) -> tuple[F64, F64]:
    """(M, LENGTH) responses to a source in direction (50°, 35°): the direct sound at each mic's
    fractional arrival, an echo 5 ms later from elsewhere, a faint decaying tail; and the
    arrival times (s) relative to the centre."""
    arrivals = arrival_times(positions, direction(50, 35))
    echo_arrivals = arrival_times(positions, direction(230, 20))
    rng = np.random.default_rng(seed)
    f = np.fft.rfftfreq(LENGTH)
    out = []
    for t, te in zip(arrivals, echo_arrivals, strict=True):
        d = DIRECT_AT + t * RATE
        spectrum = np.exp(-2j * np.pi * f * d) + echo * np.exp(
            -2j * np.pi * f * (d + 80 + te * RATE)
        )
        tail = rng.standard_normal(LENGTH) * np.exp(-np.arange(LENGTH) / 400.0) * echo * 0.1
        tail[: int(DIRECT_AT) + 120] = 0.0
        out.append(np.fft.irfft(spectrum, LENGTH) + tail)
    return np.asarray(out), arrivals


def record(rirs: F64, played: F64, start: int, noise: float, seed: int = 1) -> F64:
    """(M, N) what the mics hear: silence, the sweep from `start`, 1 s after; white noise at
    `noise` times the sweep's RMS."""
    emitted = np.concatenate([np.zeros(start), played, np.zeros(RATE)])
    size = 1 << (emitted.size + rirs.shape[1]).bit_length()
    heard = np.fft.irfft(np.fft.rfft(emitted, size) * np.fft.rfft(rirs, size, axis=1), size)
    heard = heard[:, : emitted.size]
    rng = np.random.default_rng(seed)
    return np.asarray(heard + noise * float(np.std(played)) * rng.standard_normal(heard.shape))


def band_limited(x: F64, band: tuple[float, float] = SWEEP_BAND_HZ) -> F64:
    size = 1 << (2 * x.shape[-1]).bit_length()
    f = np.fft.rfftfreq(size, 1 / RATE)
    spectra = np.fft.rfft(x, size, axis=-1)
    spectra[..., (f < band[0]) | (f > band[1])] = 0.0
    return np.asarray(np.fft.irfft(spectra, size, axis=-1)[..., : x.shape[-1]])


def test_the_sweep_is_what_the_technician_plays() -> None:
    s = sweep(2.0)
    assert s.size == 2 * RATE and np.max(np.abs(s)) <= 1.0 and abs(s[0]) < 1e-6
    power = np.abs(np.fft.rfft(s)) ** 2
    f = np.fft.rfftfreq(s.size, 1 / RATE)
    inside = (f >= SWEEP_BAND_HZ[0]) & (f <= SWEEP_BAND_HZ[1])
    assert power[inside].sum() / power.sum() > 0.99
    with pytest.raises(ValueError):
        sweep(0.1)


def test_the_measured_responses_are_the_true_ones_in_band_wherever_the_sweep_started() -> None:
    rirs, _ = responses(FOUR, echo=0.5)
    played = sweep(2.0)
    early = measure_responses(record(rirs, played, 1234, 1e-3), played)
    late = measure_responses(record(rirs, played, 9876, 1e-3, seed=2), played)
    truth = band_limited(rirs)
    for measured in (early, late):
        assert measured.shape == (4, int(0.605 * RATE))
        # the cut starts 5 ms before the strongest arrival: align the truth the same way
        start = int(np.argmax(np.sum(truth**2, axis=0))) - 80
        expected = truth[:, start : start + LENGTH - start]
        # in band: away from the sweep's fades, where it has (nearly) all its energy
        got = band_limited(measured[:, : expected.shape[1]], INNER_BAND_HZ)
        expected = band_limited(expected, INNER_BAND_HZ)
        for m in range(4):
            corr = (
                np.dot(got[m], expected[m]) / np.linalg.norm(got[m]) / np.linalg.norm(expected[m])
            )
            assert corr > 0.99
        # the echo 5 ms after the direct sound is there at half its level
        env = np.abs(measured[0])
        assert env[80 + 75 : 80 + 86].max() == pytest.approx(0.5 * env[75:86].max(), rel=0.15)
    np.testing.assert_allclose(early[:, :1000], late[:, :1000], atol=0.02 * np.abs(early).max())


@pytest.mark.parametrize("name", ["four", "six"])
def test_the_direct_arrivals_match_the_geometry_within_a_sixteenth_of_a_sample(name: str) -> None:
    positions = FOUR if name == "four" else SIX
    rirs, arrivals = responses(positions, echo=0.5)
    played = sweep(2.0)
    measured = measure_responses(record(rirs, played, 4321, 1e-3), played)
    _, relative = direct_path(measured)
    expected = (arrivals - arrivals.mean()) * RATE
    assert np.max(np.abs(relative * RATE - expected)) <= 1 / 16
    spot = spot_from_responses("exam-table", [measured])
    assert np.max(np.abs(spot.arrivals_s * RATE - expected)) <= 1 / 16


def test_at_a_high_direct_to_reverberant_ratio_h_is_the_free_field_steering() -> None:
    rirs, arrivals = responses(FOUR, echo=0.02)
    played = sweep(2.0)
    coloured = np.asarray([np.convolve(r, [1.0, -0.6, 0.25, 0.1])[:LENGTH] for r in rirs])
    spot = spot_from_responses(
        "desk", [measure_responses(record(coloured, played, 999, 1e-3), played)]
    )
    f = np.arange(257) * RATE / 512
    a = np.exp(-2j * np.pi * np.outer(f, arrivals - arrivals.mean()))
    band = (f > 300) & (f < 6000)
    error = np.linalg.norm(spot.h[band] - a[band], axis=1) / np.linalg.norm(a[band], axis=1)
    assert np.median(error) < 0.05 and np.max(error) < 0.15  # the loudspeaker's colour is gone
    # Ψ per unit direct power: about a aᴴ here, Hermitian, and its trace about M
    trace = np.trace(spot.psi[band], axis1=1, axis2=2).real
    assert np.median(trace) == pytest.approx(4.0, rel=0.1)
    np.testing.assert_array_equal(spot.psi, spot.psi.conj().transpose(0, 2, 1))
    assert spot.h.shape == (257, 4) and spot.psi.shape == (257, 4, 4)


def test_a_recording_without_a_sweep_is_refused_plainly() -> None:
    played = sweep(2.0)
    rng = np.random.default_rng(3)
    with pytest.raises(CalibrationError, match="no sweep heard"):
        measure_responses(rng.standard_normal((4, 4 * RATE)), played)
    with pytest.raises(CalibrationError, match="no sweep heard"):
        measure_responses(np.zeros((4, 4 * RATE)), played)
    rirs, _ = responses(FOUR, echo=0.5)
    with pytest.raises(CalibrationError, match="shorter than the sweep"):
        measure_responses(record(rirs, played, 0, 0.0)[:, :RATE], played)


def test_the_sweep_snr_falls_with_the_rooms_noise() -> None:
    rirs, _ = responses(FOUR, echo=0.5)
    played = sweep(2.0)
    figures = [
        sweep_snr_db(measure_responses(record(rirs, played, 2000, noise), played))
        for noise in (0.1, 1.0, 10.0)  # the room's noise, relative to the sweep's RMS
    ]
    assert figures[0] > 50.0
    # noise-limited: 20 dB more noise, 20 dB less SNR (and still heard at -20 dB)
    assert figures[0] - figures[1] == pytest.approx(20.0, abs=3.0)
    assert figures[1] - figures[2] == pytest.approx(20.0, abs=3.0)


def test_several_measurements_are_pooled_and_names_are_checked() -> None:
    played = sweep(2.0)
    one, _ = responses(FOUR, echo=0.3, seed=4)
    two, _ = responses(FOUR, echo=0.3, seed=5)
    m1 = measure_responses(record(one, played, 100, 1e-3), played)
    m2 = measure_responses(record(two, played, 100, 1e-3), played)
    pooled = spot_from_responses("bed", [m1, m2])
    alone = spot_from_responses("bed", [m1])
    assert not np.allclose(pooled.psi, alone.psi)
    with pytest.raises(CalibrationError, match="not valid"):
        spot_from_responses("Exam Table", [m1])
    with pytest.raises(CalibrationError, match="different arrays"):
        spot_from_responses("bed", [m1, m1[:3]])
