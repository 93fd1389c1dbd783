"""Oracle ceilings (issue #23): what a front end could reach if it knew the answer.

None of these is a device candidate. Each one is given something no device has (the talkers'
true positions, the true noise-only signal, the anechoic reference itself) and runs offline
on the whole scene, so the evaluation can tell "our beams are weak" from "the goal is out of
reach for this kind of filter". All work on the beams' own STFT grid (512-point sqrt-Hann,
256 hop, `edge_recorder.audio.array.stft`):

- `mvdr`: MVDR steered with the true direct path from each talker (the one talking, known
  from the dry tracks) and the true noise covariance (from the noise-only signal, whole scene).
- `least_squares` with one frame: per bin the time-invariant multichannel filter that is
  closest, in least squares over the whole scene, to the reference's STFT: the multichannel
  Wiener filter with the true statistics, the upper bound for any time-invariant linear
  per-bin filter on this STFT. With `who` (each frame's talker, `talker_frames`) it fits one
  such filter per talker, switching at the turns: the bound for a beam that follows the talker.
- `least_squares` with several frames: the same with the past `taps - 1` STFT frames of every
  mic as extra inputs (a causal, convolutive multi-frame filter): the linear ceiling that can
  also cancel late reverberation. `folds=2` fits on one half and scores on the other, which
  shows how much of an in-sample fit with many taps is over-fitting rather than dereverberation.
- the "no noise" rows: the channel average, and the blind `mvdr-wpe` beam (the shipped beams
  without the post-filter, which has nothing to do without noise), fed the capture's speech
  alone. The first is what a perfect noise remover (neural or any other) could add to the
  plain mix; the second what it could add behind the blind beam. Both are still scored
  against the anechoic reference, so what they miss is reverberation, which no noise
  suppressor removes.

Scored like every candidate (same alignment and metrics); their CPU column is offline
whole-scene time, for the record only.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import numpy.typing as npt

from devtools.farfield import candidates, geometry, metrics, scene
from edge_recorder.audio.array import make_array_processor
from edge_recorder.audio.array.geometry import SPEED_OF_SOUND
from edge_recorder.audio.array.spots import stft as stft  # the analysis every ceiling uses
from edge_recorder.audio.array.stft import HOP, NFFT

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]
C128 = npt.NDArray[np.complex128]
Ints = npt.NDArray[np.int64]
Real = F32 | F64
RIDGE = 1e-9  # diagonal loading of the normal equations, relative to their mean diagonal
_WINDOW: F64 = np.sqrt(0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(NFFT) / NFFT))
PREFIX = "oracle: "  # every oracle candidate's name starts with this
MVDR_CEILING = f"{PREFIX}MVDR, true steering + noise cov."
MWF_CEILING = f"{PREFIX}MWF (per-bin LS, 1 frame)"
PLOTTED_CEILINGS = (MVDR_CEILING, MWF_CEILING)  # the others only in the table
NO_NOISE_AVERAGE = f"{PREFIX}no noise, channel average"
NO_NOISE_BEAM_KIND = "mvdr-wpe"  # the best blind beam without a post-filter
NO_NOISE_BEAM = f"{PREFIX}no noise, {NO_NOISE_BEAM_KIND}"
MULTI_FRAME_TAPS = 4  # frames (the current + 3 past, 64 ms more) of the multi-frame rows


def is_oracle(name: str) -> bool:
    """True for a ceiling row (this module's, or the best-single-channel pick)."""
    return name.startswith(PREFIX) or "(oracle)" in name


def istft(spectra: C128, n: int) -> F32:
    """The inverse of `stft` (the window's squares add to one at 50 % overlap): n samples."""
    frames = np.fft.irfft(spectra, n=NFFT, axis=-1) * _WINDOW
    t = frames.shape[-2]
    out = np.zeros((*frames.shape[:-2], (t + 1) * HOP))
    out[..., : t * HOP] += frames[..., :HOP].reshape(*frames.shape[:-2], -1)
    out[..., HOP : (t + 1) * HOP] += frames[..., HOP:].reshape(*frames.shape[:-2], -1)
    return np.asarray(out[..., HOP : HOP + n], np.float32)


def stacked(spectra: C128, taps: int) -> C128:
    """(M, T, F) → (T, F, M·taps): every mic's frame t, t-1, …, t-taps+1 (zeros before 0)."""
    m, t, f = spectra.shape
    out = np.zeros((t, f, m * taps), np.complex128)
    for lag in range(taps):
        out[lag:, :, lag * m : (lag + 1) * m] = spectra[:, : t - lag].transpose(1, 2, 0)
    return out


def solve(inputs: C128, target: C128, frames: npt.NDArray[np.bool_] | None = None) -> C128:
    """(F, K) weights w minimising Σ_t |target(t, f) - Σ_k w_k inputs(t, f, k)|² per bin, over
    `frames` (all by default); a tiny ridge keeps silent bins solvable."""
    y = inputs if frames is None else inputs[frames]
    d = target if frames is None else target[frames]
    yf = np.ascontiguousarray(y.transpose(1, 2, 0))  # (F, K, T)
    gram = yf.conj() @ yf.transpose(0, 2, 1)  # (F, K, K)
    rhs = yf.conj() @ d.T[:, :, None]  # (F, K, 1)
    k = gram.shape[-1]
    load = RIDGE * np.real(np.trace(gram, axis1=1, axis2=2)) / k + 1e-30
    weights = np.linalg.solve(gram + load[:, None, None] * np.eye(k), rhs)[:, :, 0]
    return np.asarray(weights, np.complex128)


def apply(inputs: C128, weights: C128) -> C128:
    """(T, F, K) inputs through (F, K) weights → (T, F)."""
    return np.asarray(np.einsum("tfk,fk->tf", inputs, weights), np.complex128)


def talker_frames(dry: F32, frames: int) -> Ints:
    """For each STFT frame, the talker (0, 1) who spoke last: a turn's reverberant tail stays
    with its talker until the other one starts (they never overlap in these scenes)."""
    energy = np.stack([np.abs(stft(track)).sum(axis=-1) for track in dry])[:, :frames]
    active = energy > 1e-3 * energy.max(axis=1, keepdims=True)
    who = np.zeros(frames, np.int64)
    last = 0
    for t in range(frames):
        if active[0, t] != active[1, t]:
            last = 0 if active[0, t] else 1
        who[t] = last
    return who


def least_squares(
    capture: Real, reference: Real, taps: int = 1, who: Ints | None = None, folds: int = 1
) -> tuple[F32, C128]:
    """The least-squares multi-frame filter's output for (N, M) `capture`, and its weights
    (the first fold's, the first talker's when `who` splits them). With `who`, one filter per
    talker; with `folds` > 1, each contiguous fold is filtered with weights fitted on the
    others (a held-out score)."""
    n = capture.shape[0]
    inputs = stacked(stft(capture.T.astype(np.float64)), taps)
    target = stft(reference.astype(np.float64))
    t = inputs.shape[0]
    groups = np.zeros(t, np.int64) if who is None else who[:t]
    fold_of = np.minimum(np.arange(t) * folds // t, folds - 1)
    out = np.zeros_like(target)
    first: C128 | None = None
    for group in np.unique(groups):
        for fold in range(folds):
            fit = (groups == group) & ((fold_of != fold) if folds > 1 else True)
            use = (groups == group) & ((fold_of == fold) if folds > 1 else True)
            weights = solve(inputs, target, fit)
            out[use] = apply(inputs[use], weights)
            first = weights if first is None else first
    assert first is not None
    return istft(out, n), first


def steering(scn: scene.Scene, talker: int, freqs: F64) -> C128:
    """(F, M) true direct-path transfer from `talker` to each mic, relative to the array
    centre (where the reference is taken): level 1/r and delay r/c, both relative."""
    mics = geometry.board_to_room(scn.positions_m)
    source = np.asarray(geometry.place_talkers(scn.spec.seed)[talker].position())
    centre = float(np.linalg.norm(source - np.asarray(geometry.DEVICE_M)))
    distance = np.linalg.norm(mics - source, axis=1)
    delay = (distance - centre) / SPEED_OF_SOUND
    result: C128 = (centre / distance)[None, :] * np.exp(-2j * np.pi * np.outer(freqs, delay))
    return result


def mvdr(scn: scene.Scene, capture: F32, noise: F32, loading: float = 1e-3) -> F32:
    """MVDR with the true steering (the talking talker's direct path) and the true noise
    covariance (whole-scene, from the noise-only part of `capture`), time-invariant per talker."""
    x = stft(capture.T.astype(np.float64))  # (M, T, F)
    v = stft(noise.T.astype(np.float64))
    m, t, f = x.shape
    freqs = np.arange(f, dtype=np.float64) * float(scene.RATE / NFFT)
    vf = v.transpose(2, 0, 1)  # (F, M, T)
    cov = vf @ vf.conj().transpose(0, 2, 1) / t
    power = np.real(np.trace(cov, axis1=1, axis2=2)) / m
    cov = cov + (loading * power + 1e-30)[:, None, None] * np.eye(m)
    who = talker_frames(scn.dry, t)
    out = np.zeros((t, f), np.complex128)
    for talker in (0, 1):
        a = steering(scn, talker, freqs)
        z = np.linalg.solve(cov, a[:, :, None])[:, :, 0]
        w = z / np.einsum("fm,fm->f", a.conj(), z)[:, None]  # (F, M), aᴴR⁻¹a real
        frames = who == talker
        out[frames] = np.einsum("mtf,fm->tf", x[:, frames], w.conj())
    return istft(out, capture.shape[0])


def blind_beam(positions_m: F64, capture: F32, kind: str = NO_NOISE_BEAM_KIND) -> F32:
    """`kind`'s output for `capture` (N, M), fed in the pipeline's chunks and advanced by the
    processor's declared delay (zeros at the end), so it lines up with the capture."""
    processor = make_array_processor(kind, positions_m, scene.RATE)
    output, _ = candidates.run(processor, capture)
    delay = processor.delay_samples
    return np.concatenate([output[delay:], np.zeros(delay, np.float32)])


def ceilings(scn: scene.Scene, capture: F32, noise: F32) -> list[tuple[str, Callable[[], F32]]]:
    """The ceiling rows of the evaluation, each a name and how to compute its output."""
    ref = scn.reference
    who = talker_frames(scn.dry, stft(ref).shape[0])
    speech = np.ascontiguousarray(capture - noise, np.float32)

    def ls(taps: int, per_talker: bool = False, folds: int = 1) -> Callable[[], F32]:
        return lambda: least_squares(capture, ref, taps, who if per_talker else None, folds)[0]

    return [
        (MVDR_CEILING, lambda: mvdr(scn, capture, noise)),
        (NO_NOISE_AVERAGE, lambda: np.asarray(speech.mean(axis=1), np.float32)),
        (NO_NOISE_BEAM, lambda: blind_beam(scn.positions_m, speech)),
        (MWF_CEILING, ls(1)),
        (f"{PREFIX}MWF per talker", ls(1, per_talker=True)),
        (f"{PREFIX}MWF per talker, held out", ls(1, per_talker=True, folds=2)),
        (f"{PREFIX}LS {MULTI_FRAME_TAPS} frames per talker", ls(MULTI_FRAME_TAPS, True)),
        (
            f"{PREFIX}LS {MULTI_FRAME_TAPS} frames per talker, held out",
            ls(MULTI_FRAME_TAPS, True, folds=2),
        ),
    ]


SWEEP_TAPS = (1, 2, 4, 8, 16)


def sweep(
    scn: scene.Scene, snr_db: float, taps: tuple[int, ...] = SWEEP_TAPS
) -> list[dict[str, float]]:
    """SI-SDR gain of the least-squares ceiling for each number of frames over the noisy
    capture's channel average: one filter or one per talker, fitted in-sample or held out (2
    folds), on the noisy capture and on its speech alone (so the difference is what the
    noise costs the ceiling, and the speech-only rows what reverberation alone allows)."""
    capture = scene.mix(scn, snr_db)
    clean = scene.mix(scn, 300.0)  # noise at -300 dB: the speech alone
    ref = scn.reference
    who = talker_frames(scn.dry, stft(ref).shape[0])

    def score(output: F32) -> float:
        lag = metrics.best_lag(ref, output)
        return metrics.si_sdr(*metrics.aligned(ref, output, lag))

    average = score(np.asarray(capture.mean(axis=1), np.float32))
    rows = []
    for n in taps:
        row: dict[str, float] = {"frames": n}
        for label, signal, split in (
            ("one filter", capture, None), ("per talker", capture, who),
            ("per talker, speech only", clean, who),
        ):  # fmt: skip
            for folds, how in ((1, "in-sample"), (2, "held out")):
                gain = score(least_squares(signal, ref, n, split, folds)[0]) - average
                row[f"{label}, {how}"] = round(gain, 2)
        rows.append(row)
    return rows
