"""A streaming STFT filter bank that gives the same output whatever the input's framing.

Input samples are laid on a fixed grid counted from the first sample: hops of `HOP` samples,
gathered in batches of `batch` hops (default `BATCH`). Only a full batch is transformed,
always as an array of the same shape, and the beamformer's state (direction, noise
covariance, weights) evolves batch by batch (hop by hop inside one), never call by call. So
numpy's FFTs and reductions see identical operands however `process` is called, and the
output is bit-exact under any split (the DC blocker's trick, one level up).

Analysis and synthesis use a square-root periodic Hann window at 50 % overlap, whose squares
add up to one: with unit weights the bank reproduces its input. Batching costs latency: a
sample leaves `delay_samples` after it came in (`batch·HOP + HOP - 1`: 143.9 ms at 16 kHz for
the default 8 hops, 79.9 ms for 4, 47.9 ms for 2). Fewer hops per batch mean more numpy calls
per second; the beamformers therefore adapt on windows of 16 hops (256 ms) gathered from
several small batches (`DasProcessor.adapt_hops`), so only the transforms and the weighting
run per batch, and a 2-hop batch costs about 1 ms per audio-second more than an 8-hop one on
six microphones (measured on the development machine; noisy, it is shared).

Several signals can be run through one bank at once (a leading stack axis): the first drives
the adaptation, the others are filtered with the very same weights. Evaluations use this to
measure what the beamformer did to the target and to the noise separately.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from numpy.lib.stride_tricks import sliding_window_view

NFFT = 512  # 32 ms at 16 kHz: enough frequency resolution for a 5-10 cm array
HOP = NFFT // 2
BATCH = 8  # hops per transform: 128 ms at 16 kHz
F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]
C128 = npt.NDArray[np.complex128]


class StftBank:
    """Base of the STFT processors; subclasses implement `_filter` (one batch → one batch)."""

    def __init__(self, channels: int, rate: int, batch: int = BATCH) -> None:
        if batch < 1:
            raise ValueError(f"batch must be at least one hop, got {batch}")
        self.channels = channels
        self.rate = rate
        self.batch = batch  # hops per transform: latency against CPU (numpy calls per second)
        self.delay_samples = batch * HOP + HOP - 1
        self.freqs: F64 = np.arange(NFFT // 2 + 1, dtype=np.float64) * float(rate / NFFT)
        n = np.arange(NFFT)
        self._window: F64 = np.sqrt(0.5 - 0.5 * np.cos(2.0 * np.pi * n / NFFT))
        self._stack = 0  # signals per call, fixed by the first call
        self._in: F64 = np.zeros(0)
        self._frames: F64 = np.zeros(0)
        self._windowed: F64 = np.zeros(0)  # the frames times the window, rewritten per batch
        self._fill = 0  # samples in the open batch
        self._tail: F64 = np.zeros(0)
        self._ready: F32 = np.zeros(0, np.float32)
        self._skip = HOP  # the first batch's first hop lies before the stream's start

    def process(self, block: F32) -> F32:
        """(frames, M) float32 → `frames` mono float32 samples, `delay_samples` late."""
        out: F32 = self.process_stack(block[None])[0]
        return out

    def process_stack(self, blocks: F32) -> F32:
        """(K, frames, M) → (K, frames): signal 0 drives the adaptation, all share weights."""
        k, n, m = blocks.shape
        if m != self.channels:
            raise ValueError(f"expected {self.channels} channels, got {m}")
        if not self._stack:
            self._start(k)
        elif k != self._stack:
            raise ValueError(f"expected a stack of {self._stack} signals, got {k}")
        parts = [self._ready]
        pos, room = 0, self.batch * HOP
        while pos < n:
            take = min(room - self._fill, n - pos)
            start = HOP + self._fill
            self._in[:, :, start : start + take] = blocks[:, pos : pos + take].transpose(0, 2, 1)
            self._fill += take
            pos += take
            if self._fill == room:
                parts.append(self._batch())
                self._fill = 0
        ready = np.concatenate(parts, axis=1) if len(parts) > 1 else parts[0]
        self._ready = ready[:, n:]
        return ready[:, :n]

    def _start(self, stack: int) -> None:
        self._stack = stack
        self._in = np.zeros((stack, self.channels, HOP + self.batch * HOP))
        # the batch's frames as a view, made once: `_in` is only ever written in place
        self._frames = sliding_window_view(self._in, NFFT, axis=2)[:, :, ::HOP]  # (K, M, B, N)
        self._windowed = np.empty(self._frames.shape)
        self._tail = np.zeros((stack, HOP))
        self._ready = np.zeros((stack, self.delay_samples), np.float32)

    def _batch(self) -> F32:
        np.multiply(self._frames, self._window, out=self._windowed)
        spectra: C128 = np.fft.rfft(self._windowed, axis=-1)
        y = np.fft.irfft(self._filter(spectra), n=NFFT, axis=-1)  # (K, B, N)
        y *= self._window
        # overlap-add: each hop is a frame's first half plus the previous frame's second half
        acc = y[:, :, :HOP].copy()  # (K, B, HOP)
        acc[:, 1:] += y[:, :-1, HOP:]
        acc[:, 0] += self._tail
        self._tail = y[:, -1, HOP:].copy()
        self._in[:, :, :HOP] = self._in[:, :, self.batch * HOP :]
        out = acc.reshape(self._stack, -1)[:, self._skip :]
        self._skip = 0
        return out.astype(np.float32)

    def _filter(self, spectra: C128) -> C128:
        """(K, M, B, F) → (K, B, F); override."""
        raise NotImplementedError


def apply_weights(spectra: C128, weights: C128) -> C128:
    """Y = w^H X per bin: (K, M, B, F) with (F, M) weights → (K, B, F)."""
    result: C128 = np.einsum("kmbf,fm->kbf", spectra, weights.conj())
    return result
