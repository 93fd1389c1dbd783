"""Scores of a candidate's output against the reference: SI-SDR, STOI and VAD F1.

Candidates may delay their output (an STFT beamformer by ~140 ms), and each mic hears the
talkers a few samples before or after the array centre, so every score is taken after
alignment: the candidate's declared delay, then the best lag within ±`SEARCH_SAMPLES` by
cross-correlation. Without it a perfect but late output would score as noise.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from benchmarks import _audio, bench_vad
from edge_recorder.audio.vad import VadEngine

F32 = npt.NDArray[np.float32]
RATE = _audio.RATE
SEARCH_SAMPLES = 480  # ±30 ms around the declared delay
_EPS = 1e-12


def si_sdr(reference: F32, estimate: F32) -> float:
    """Scale-invariant SDR in dB (Le Roux et al., "SDR - half-baked or well done?", 2019):
    the estimate's projection on the zero-mean reference is the target, the rest is error.
    Scale-invariant so a front end's gain (or AGC's average gain) neither helps nor hurts."""
    ref = reference.astype(np.float64) - float(np.mean(reference))
    est = estimate.astype(np.float64) - float(np.mean(estimate))
    target = ref * (float(np.dot(est, ref)) / (float(np.dot(ref, ref)) + _EPS))
    error = est - target
    return float(10 * np.log10((np.dot(target, target) + _EPS) / (np.dot(error, error) + _EPS)))


def best_lag(reference: F32, estimate: F32, centre: int = 0, search: int = SEARCH_SAMPLES) -> int:
    """The lag (samples the estimate is late) in [centre - search, centre + search] that
    maximises the cross-correlation; positive = the estimate lags the reference."""
    n = reference.size + estimate.size
    size = 1 << (n - 1).bit_length()
    spectrum = np.fft.rfft(estimate.astype(np.float64), size) * np.conj(
        np.fft.rfft(reference.astype(np.float64), size)
    )
    xcorr = np.fft.irfft(spectrum, size)  # xcorr[k] = Σ est[t + k] ref[t], negative k wrapped
    lags = np.arange(centre - search, centre + search + 1)
    return int(lags[int(np.argmax(xcorr[lags % size]))])


def aligned(reference: F32, estimate: F32, lag: int) -> tuple[F32, F32]:
    """Equal-length overlapping parts of reference and estimate, the estimate advanced by `lag`."""
    if lag >= 0:
        est = estimate[lag:]
        ref = reference[: est.size]
    else:
        ref = reference[-lag:]
        est = estimate[: ref.size]
    m = min(ref.size, est.size)
    return ref[:m], est[:m]


def stoi(reference: F32, estimate: F32) -> float:
    """Short-time objective intelligibility (Taal et al. 2011) via pystoi, 0-1; it drops the
    reference's silent frames itself. pystoi has no type hints: imported by name."""
    pystoi = importlib.import_module("pystoi")
    return float(pystoi.stoi(reference.astype(np.float64), estimate.astype(np.float64), RATE))


def vad_f1(engine: VadEngine, audio: F32, labels: npt.NDArray[np.bool_]) -> float:
    """Frame (10 ms) F1 of the engine's raw decisions against the reference's labels, decided
    and scored exactly as benchmarks/bench_vad.py does for the mono VAD bench."""
    decisions, _, _ = bench_vad.decide(engine, audio)
    return bench_vad.scores(decisions, labels)["f1"]


@dataclass(frozen=True)
class Scores:
    """A candidate's output scored against the reference, after alignment."""

    lag: int
    si_sdr_db: float
    si_sdr_early_db: float  # against the secondary (direct + early reflections) reference
    stoi: float
    f1: dict[str, float]  # VAD engine name → F1


def score(
    reference: F32,
    estimate: F32,
    declared_delay: int,
    engines: dict[str, VadEngine],
    early: F32 | None = None,
) -> Scores:
    """Align on `reference` (declared delay, then the bounded search), then every metric on the
    overlap; `early` (same timing as `reference`) gets an SI-SDR of its own."""
    lag = best_lag(reference, estimate, centre=declared_delay)
    ref, est = aligned(reference, estimate, lag)
    labels = _audio.labels_of(ref)
    early_ref = aligned(early, estimate, lag)[0] if early is not None else ref
    return Scores(
        lag=lag,
        si_sdr_db=si_sdr(ref, est),
        si_sdr_early_db=si_sdr(early_ref, est),
        stoi=stoi(ref, est),
        f1={name: vad_f1(engine, est, labels) for name, engine in engines.items()},
    )
