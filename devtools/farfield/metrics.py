"""Scores of a candidate's output against the reference: SI-SDR, STOI and VAD F1.

Candidates may delay their output (an STFT beamformer by ~140 ms), and each mic hears the
talkers a few samples before or after the array centre, so every score is taken after
alignment: the candidate's declared delay, then the best lag within ±30 ms by cross-correlation.
Without it a perfect but late output would score as noise. SI-SDR and the alignment are the
device's own (`edge_recorder.audio.array.scoring`, which `edge-recorder array-check` uses in a
real room).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from benchmarks import _audio, bench_vad
from edge_recorder.audio.array.scoring import aligned, best_lag, si_sdr, stoi
from edge_recorder.audio.vad import VadEngine

__all__ = ["Scores", "aligned", "best_lag", "score", "si_sdr", "stoi", "vad_f1"]

F32 = npt.NDArray[np.float32]
RATE = _audio.RATE


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
