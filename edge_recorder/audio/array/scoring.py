"""How much a beam helps in a real room: a take of a known signal, scored kind by kind.

The far-field evaluation (docs/audio.md) measures the beams in simulated rooms. In a real
room the clean reference is what a loudspeaker played (`testvoice`, or any speech WAV):
`edge-recorder array-check` records the raw microphones while it plays, then runs every
array processor over that one take, exactly as the pipeline would (`ArrayMix`: the same
resampling, batches and delay compensation), and scores each output against the played
signal. The take is found in the recording by cross-correlation; a loudspeaker's clock that
runs a little fast or slow against the microphones' (phones: ±20-100 ppm, 1-3 ms over 30 s,
which alone would cost the high bins several dB of SI-SDR) is measured from where each part
of the signal lands and taken out by resampling the reference. The room's noise is measured
in the lead-in before the signal starts.

The absolute scores include the loudspeaker's own colour and the room's echo, which every
kind hears alike: what a take says is each kind's gain over the plain mix of the same
microphones (SI-SDR; STOI too when `pystoi` is installed, the `array-check` extra).
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
import numpy.typing as npt

from edge_recorder.audio.array.stage import ArrayMix
from edge_recorder.audio.frames import AudioFormat
from edge_recorder.config.model import AudioConfig

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]
A = TypeVar("A", F32, F64)
B = TypeVar("B", F32, F64)
Stoi = Callable[[F64, F64, int], float]  # pystoi.stoi(clean, processed, rate)

RATE = 16000
SEARCH_SAMPLES = 480  # ±30 ms: best_lag's default search
KIND_SEARCH = 80  # ±5 ms around the located signal: a kind's residual lag
FIND_SECONDS = 8.0  # of the reference, to find it: short enough that a 300 ppm drift stays sharp
MIN_PROMINENCE = 15.0  # GCC-PHAT peak over its spread to count as found (noise: ~6-8)
DRIFT_PARTS = 10  # pieces of the reference located one by one to measure clock drift
DRIFT_PIECE_S = 3.0  # at most, each: 300 ppm moves a piece's end by 14 samples
DRIFT_ROUNDS = 3  # measure, resample, measure what is left
DRIFT_TOLERANCE = 3.0  # samples off the fitted line that still count as agreeing
DRIFT_SEARCH = 800  # ±50 ms around where a piece should land
MIN_DRIFT_PPM = 1.0  # below this the clocks agree well enough: no resampling (2 samples in 120 s)
MAX_DRIFT_PPM = 1000.0  # beyond this the pieces disagree: a bad location, not a clock
LEAD_IN_MARGIN = 0.1  # s before the signal that are not counted as the room's noise
MIN_LEAD_IN = 0.5  # s of lead-in needed to measure the noise
_EPS = 1e-12


class NotFound(ValueError):
    """The reference is not (all) in the recording: the message says what to change."""


def si_sdr(reference: F32 | F64, estimate: F32 | F64) -> float:
    """Scale-invariant SDR in dB (Le Roux et al., "SDR - half-baked or well done?", 2019):
    the estimate's projection on the zero-mean reference is the target, the rest is error.
    Scale-invariant so a front end's gain (or AGC's average gain) neither helps nor hurts."""
    ref = reference.astype(np.float64) - float(np.mean(reference))
    est = estimate.astype(np.float64) - float(np.mean(estimate))
    target = ref * (float(np.dot(est, ref)) / (float(np.dot(ref, ref)) + _EPS))
    error = est - target
    return float(10 * np.log10((np.dot(target, target) + _EPS) / (np.dot(error, error) + _EPS)))


def cross_correlation(
    reference: F32 | F64, estimate: F32 | F64, *, phat: bool = False
) -> tuple[F64, int]:
    """The circular cross-correlation xcorr[k] = Σ est[t + k] ref[t] (negative k wrapped)
    and its length; with `phat` the generalised one with the phase transform, whose peak
    stays sharp on voiced sound and in a room (the plain one peaks at pitch periods too)."""
    n = reference.size + estimate.size
    size = 1 << (n - 1).bit_length()
    spectrum = np.fft.rfft(estimate.astype(np.float64), size) * np.conj(
        np.fft.rfft(reference.astype(np.float64), size)
    )
    if phat:
        spectrum /= np.maximum(np.abs(spectrum), _EPS)
    xcorr: F64 = np.fft.irfft(spectrum, size)
    return xcorr, size


def best_lag(
    reference: F32 | F64,
    estimate: F32 | F64,
    centre: int = 0,
    search: int = SEARCH_SAMPLES,
    *,
    phat: bool = False,
) -> int:
    """The lag (samples the estimate is late) in [centre - search, centre + search] that
    maximises the cross-correlation; positive = the estimate lags the reference."""
    xcorr, size = cross_correlation(reference, estimate, phat=phat)
    lags = np.arange(centre - search, centre + search + 1)
    return int(lags[int(np.argmax(xcorr[lags % size]))])


def aligned(reference: A, estimate: B, lag: int) -> tuple[A, B]:
    """Equal-length overlapping parts of reference and estimate, the estimate advanced by `lag`."""
    if lag >= 0:
        est = estimate[lag:]
        ref = reference[: est.size]
    else:
        ref = reference[-lag:]
        est = estimate[: ref.size]
    m = min(ref.size, est.size)
    return ref[:m], est[:m]


@dataclass(frozen=True)
class Location:
    """Where the reference starts in the recording, how well it matched, the loudspeaker's
    clock against the mics' (ppm, + = the take is longer than the file), and the reference
    as it was played at the mics' clock."""

    offset: int
    match: float
    drift_ppm: float
    reference: F64


def locate(reference: F64, mix: F64) -> Location:
    """Find `reference` in `mix` (the mics' average), with the clock drift taken out: found
    by its first seconds (a long signal's peak, smeared by the drift, could be lost), the
    drift measured, the reference resampled to it and measured again (a large drift smears
    the pieces' peaks too, so the first estimate may be short) until what is left is under
    MIN_DRIFT_PPM; then it must be there whole.

    Raises NotFound when it is not there, or not whole."""
    import soxr

    played = reference
    offset = _find(played, mix)
    drift = 0.0
    for _ in range(DRIFT_ROUNDS):
        residual = _drift_ppm(played, mix, offset)
        if residual == 0.0:
            break
        drift = (1 + drift * 1e-6) * (1 + residual * 1e-6) * 1e6 - 1e6
        played = soxr.resample(reference, RATE, RATE * (1 + drift * 1e-6), quality="VHQ")
        offset = _find(played, mix)
    _check_whole(played, mix, offset)
    low = max(0, offset - KIND_SEARCH)
    match = float(np.max(_coefficients(played, mix[low : offset + KIND_SEARCH + played.size])))
    return Location(offset, match, drift, played)


def _find(reference: F64, mix: F64) -> int:
    """Where `reference` starts in `mix`: the sharpest GCC-PHAT peak of its first
    FIND_SECONDS from where it is first heard, among the starts that hold all of it."""
    if reference.size > mix.size:
        raise NotFound(
            f"the recording ({mix.size / RATE:.1f} s) is shorter than the signal "
            f"({reference.size / RATE:.1f} s): record longer"
        )
    loud = np.flatnonzero(np.abs(reference) > 1e-3 * float(np.max(np.abs(reference))))
    first = int(loud[0]) if loud.size else 0
    piece = reference[first : first + round(FIND_SECONDS * RATE)]
    last = mix.size - reference.size + first
    near = mix[first : last + piece.size]
    offset, prominence = _peak(piece, near, 0, last - first)
    if prominence < MIN_PROMINENCE:
        raise NotFound(
            f"the signal was not found in the recording (peak {prominence:.0f}, needs "
            f"{MIN_PROMINENCE:g}): was it played, loud enough, and is it the --reference file?"
        )
    return offset


def _check_whole(reference: F64, mix: F64, offset: int) -> None:
    """Each half of the reference must be where the located start puts it."""
    half = reference.size // 2
    for start, part in ((0, reference[:half]), (half, reference[half:])):
        low = max(0, offset + start - DRIFT_SEARCH)
        high = min(mix.size - part.size, offset + start + DRIFT_SEARCH)
        near = mix[low : high + part.size]  # where this half should be: a small correlation
        if high < low or _peak(part, near, 0, high - low)[1] < MIN_PROMINENCE:
            raise NotFound(
                "only part of the signal is in the recording: start playing it within a "
                "few seconds of the recording's start, or record longer"
            )


def _peak(reference: F64, mix: F64, low: int, high: int) -> tuple[int, float]:
    """The GCC-PHAT peak's start in [low, high] and its height over the correlation's
    spread (noise or another signal: ~5-8; the signal itself: 30 and more)."""
    xcorr, _ = cross_correlation(reference, mix, phat=True)
    starts = xcorr[low : high + 1]
    best = int(np.argmax(starts))
    return low + best, float(starts[best] / (float(np.std(xcorr)) + _EPS))


def _coefficients(reference: F64, mix: F64) -> F64:
    """The normalised correlation of `reference` with `mix` at every whole-overlap start."""
    xcorr, _ = cross_correlation(reference, mix)
    starts = np.arange(mix.size - reference.size + 1)
    energy = np.concatenate([[0.0], np.cumsum(mix.astype(np.float64) ** 2)])
    window = energy[starts + reference.size] - energy[starts]
    norm = np.sqrt(np.maximum(window, _EPS) * float(np.dot(reference, reference)))
    coefficient: F64 = xcorr[starts] / norm
    return coefficient


def _drift_ppm(reference: F64, mix: F64, offset: int) -> float:
    """The loudspeaker's clock against the mics' from where DRIFT_PARTS pieces of the
    reference land: the slope of landing against position, in ppm, fitted robustly (an
    echo can win a piece's peak); 0 when under MIN_DRIFT_PPM or when too few pieces agree."""
    part = reference.size // DRIFT_PARTS
    size = min(part, round(DRIFT_PIECE_S * RATE))  # short: a piece's own drift stays small
    level = float(np.dot(reference, reference)) / reference.size
    centres, lags = [], []
    for k in range(DRIFT_PARTS):
        at = k * part + (part - size) // 2
        piece = reference[at : at + size]
        if float(np.dot(piece, piece)) < 0.1 * level * size:
            continue  # a quiet piece lands anywhere
        start = max(0, offset + at - DRIFT_SEARCH)
        stop = min(mix.size, offset + at + size + DRIFT_SEARCH)
        lag = best_lag(piece, mix[start:stop], offset + at - start, DRIFT_SEARCH, phat=True)
        centres.append(at + size / 2)
        lags.append(start + lag - (offset + at))
    x, y = np.asarray(centres), np.asarray(lags, np.float64)
    if x.size < 4:
        return 0.0
    pairs = np.triu_indices(x.size, 1)
    slope = float(np.median((y[pairs[1]] - y[pairs[0]]) / (x[pairs[1]] - x[pairs[0]])))
    inliers = np.abs(y - slope * x - float(np.median(y - slope * x))) <= DRIFT_TOLERANCE
    if inliers.sum() < 0.6 * x.size:
        return 0.0
    slope = float(np.polyfit(x[inliers], y[inliers], 1)[0])
    ppm = slope * 1e6
    return 0.0 if abs(ppm) < MIN_DRIFT_PPM or abs(ppm) > MAX_DRIFT_PPM else ppm


def noise_and_snr(mix: F64, location: Location) -> tuple[float | None, float | None]:
    """The room's noise in the lead-in (dBFS of the mics' average) and the signal's SNR over
    it at the mics (dB), or None where the lead-in is too short to tell."""
    end = location.offset - round(LEAD_IN_MARGIN * RATE)
    if end < MIN_LEAD_IN * RATE:
        return None, None
    noise = float(np.mean(mix[:end] ** 2)) + _EPS
    ref = location.reference
    frames = ref[: ref.size // 256 * 256].reshape(-1, 256)
    active = np.repeat((frames**2).mean(axis=1) > 1e-3 * float((frames**2).mean(axis=1).max()), 256)
    during = mix[location.offset : location.offset + active.size][active]
    speech = max(float(np.mean(during**2)) - noise, _EPS)
    return 10 * np.log10(noise), 10 * np.log10(speech / noise)


@dataclass(frozen=True)
class KindScore:
    kind: str
    si_sdr_db: float
    stoi: float | None  # None when pystoi is not installed
    note: str | None  # the kind that ran instead, when it fell back


def stoi_available() -> bool:
    return importlib.util.find_spec("pystoi") is not None


def process(recording: F32, audio: AudioConfig, kind: str) -> tuple[F32, str | None]:
    """(N, M) raw mics at 16 kHz → the pipeline's array output for `kind` (delay
    compensated: sample n is the sound at n), and the fallback note when it fell back."""
    config = audio.model_copy(update={"array_processing": kind, "rate": RATE})
    fmt = AudioFormat(rate=RATE, channels=recording.shape[1], sample_format="S32_LE")
    mix = ArrayMix(config, fmt, 1.0, RATE)
    return mix.shape(np.ascontiguousarray(recording, np.float32), last=True), mix.note


def score_kinds(
    recording: F32, location: Location, audio: AudioConfig, kinds: Iterable[str]
) -> list[KindScore]:
    """Every kind's output over the take, aligned on the played reference and scored."""
    with_stoi = stoi_available()
    scores = []
    for kind in kinds:
        output, note = process(recording, audio, kind)
        ref = location.reference
        lag = best_lag(ref, output, centre=location.offset, search=KIND_SEARCH)
        ref_part, est = aligned(ref, output, lag)
        scores.append(
            KindScore(
                kind=kind,
                si_sdr_db=si_sdr(ref_part, est),
                stoi=stoi(ref_part, est) if with_stoi else None,
                note=note,
            )
        )
    return scores


def stoi(reference: F32 | F64, estimate: F32 | F64) -> float:
    """Short-time objective intelligibility (Taal et al. 2011) via pystoi (the array-check
    extra), 0-1; it drops the reference's silent frames itself. pystoi has no type hints:
    imported by name."""
    function: Stoi = importlib.import_module("pystoi").stoi
    return float(function(reference.astype(np.float64), estimate.astype(np.float64), RATE))
