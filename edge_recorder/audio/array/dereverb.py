"""Online dereverberation by weighted linear prediction (WPE), batched on the STFT grid.

Reverberation, not noise, is what keeps a wall-mounted array's SI-SDR low: even at 20 dB
SNR the plain mix scores about -3 dB against the anechoic talker, and a beamformer only
narrows the pick-up cone, which still holds most of the room's echo. Late reverberation is,
per frequency bin, predictable from the past: the observation `delay` frames and more ago,
filtered, explains the tail that reaches the mics now. WPE (Nakatani, Yoshioka et al.)
estimates that prediction filter G per bin by minimising the prediction error weighted by
1/λ (λ = the power of the talker's estimate in that frame, i.e. of the current filter's
output, floored at a tenth of the bin's long-run power: speech's sparsity, which keeps the
filter from whitening the talker), and subtracts the prediction:

    d(t) = x(t) - Gᴴ ỹ(t),    ỹ(t) = [x(t-delay); …; x(t-delay-taps+1)]  (stacked over mics)

The delay (2 hops, 32 ms) leaves the direct sound and the early reflections alone: they help
intelligibility, and predicting them would eat the talker. Here the filter is "block-online":
the weighted correlation statistics (R = Σ ỹỹᴴ/λ, P = Σ ỹxᴴ/λ, with exponential forgetting
per hop) take a whole batch of frames in a few vectorised numpy calls, and G = R⁻¹P is
solved on a fixed grid of hops, for all bins at once. Everything evolves per batch, never
per call, so the processor stays bit-exact under any framing, and it adds no latency of its
own (a frame is filtered in the batch that carries it).

The cost grows with (mics · taps)³ per bin for the solve and (mics · taps)² per frame for the
statistics, which is why the multichannel form uses few taps and the single-channel form
(on the beam's output) can afford more.

What it buys, honestly: a recursive room echo is removed almost entirely (a 48 ms flutter
echo's tail drops by ~30 dB, tests/unit/audio/test_array_dereverb.py), but a real room's
diffuse tail is predictable only with filters far longer than fit the CPU budget. On the
far-field set (RT60 0.5 s, 5 dB SNR) the WPE kinds add ~0.2-0.4 dB SI-SDR and ~0.01 STOI
to MVDR; an offline, iterative 4-mic WPE with 20 taps at a 128-sample hop (the textbook
form, far beyond the budget) reached only +1 dB over the channel average there. Noise at
5 dB and the early reverberation WPE deliberately keeps bound what a linear front end scores.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from edge_recorder.audio.array.beamformers import MvdrProcessor
from edge_recorder.audio.array.stft import BATCH

C128 = npt.NDArray[np.complex128]
F64 = npt.NDArray[np.float64]

# Multichannel WPE before the beam: few taps, the mics' joint statistics are (M·taps)² per bin.
MULTI_TAPS, MULTI_DELAY, MULTI_FORGET = 2, 2, 0.99
# Single-channel WPE on the beam's output: one signal, so a longer filter is affordable
# (more taps measured no better on the far-field set: 8 and 12 taps scored the same or worse).
SINGLE_TAPS, SINGLE_DELAY, SINGLE_FORGET = 5, 2, 0.995
# Bins above are passed as they are: speech's reverberant energy (and STOI's band) lies
# below, and the far-field set scored the same with 8 kHz at 1.5x the CPU.
WPE_MAX_HZ = 4000.0
WPE_SOLVE_EVERY_HOPS = 16  # hops (256 ms) between solves of G, on a fixed grid

POWER_FLOOR = 0.1  # λ ≥ this x the bin's long-run power: near-silent frames must not dominate R
REGULARISE = 1e-3  # diagonal loading of R, relative to its mean diagonal
# The long-run power per bin that sets λ's floor: its memory per 8 hops (128 ms, ~2.6 s)
LEVEL_MEMORY, LEVEL_MEMORY_HOPS = 0.95, 8


class Wpe:
    """Block-online WPE over the `bins` lowest bins of `channels` signals."""

    def __init__(
        self, channels: int, taps: int, delay: int, bins: int, solve_every_hops: int,
        forget: float, adapt_hops: int,
    ) -> None:  # fmt: skip
        self.channels = channels
        self.forget = forget  # per hop: 0.99 is a ~1.6 s memory, 0.995 ~3.2 s
        self.taps = taps
        self.delay = delay
        self.bins = bins
        self._solve_every = solve_every_hops
        self._span = delay + taps - 1  # past frames each batch needs
        self._history: C128 | None = None  # (K, M, span, Fb): the last `span` frames
        dim = channels * taps
        self._r: C128 = np.zeros((bins, dim, dim), np.complex128)
        self._p: C128 = np.zeros((bins, dim, channels), np.complex128)
        self._g: C128 = np.zeros((bins, dim, channels), np.complex128)
        self._g_conj: C128 = self._g  # conj(G), made once per solve, not per batch
        self._level: F64 | None = None  # long-run mean power per bin
        self._eye = np.eye(dim)[None]
        self._hops = 0
        self._adapt_hops = adapt_hops  # frames per update of R and P (a whole number of batches)
        self._level_memory = LEVEL_MEMORY ** (adapt_hops / LEVEL_MEMORY_HOPS)  # per update
        self._pending: list[tuple[C128, C128]] = []  # signal 0's (ỹ, x) of the open window
        self._index: npt.NDArray[np.intp] | None = None

    def filter(self, spectra: C128) -> C128:
        """(K, M, B, F) → (K, M, B, F), the first `bins` bins dereverberated; signal 0 adapts."""
        k, m, b, _ = spectra.shape
        fb = self.bins
        x = spectra[..., :fb]  # (K, M, B, Fb)
        if self._history is None:
            self._history = np.zeros((k, m, self._span, fb), np.complex128)
        if self._index is None:  # frame index of ỹ(t) tap t: span + b - delay - tap
            frames = self._span + np.arange(b)[:, None] - self.delay - np.arange(self.taps)
            self._index = frames.astype(np.intp)
        full = np.concatenate([self._history, x], axis=2)  # (K, M, span + B, Fb)
        self._history = full[:, :, b:]
        # ỹ per frame, stacked tap-major then mic: (K, Fb, B, taps·M)
        stacked = full[:, :, self._index]  # (K, M, B, taps, Fb)
        y = np.ascontiguousarray(stacked.transpose(0, 4, 2, 3, 1)).reshape(k, fb, b, -1)
        xt = np.ascontiguousarray(x.transpose(0, 3, 2, 1))  # (K, Fb, B, M)
        self._pending.append((y[0], xt[0]))
        if len(self._pending) * b >= self._adapt_hops:
            ys, xs = zip(*self._pending, strict=True)
            self._pending = []
            if len(ys) == 1:
                self._adapt(ys[0], xs[0], b)
            else:
                self._adapt(np.concatenate(ys, 1), np.concatenate(xs, 1), b * len(ys))
        d = xt - y @ self._g_conj  # (K, Fb, B, M)
        out = spectra.copy()
        out[..., :fb] = d.transpose(0, 3, 2, 1)
        return out

    def _adapt(self, y: C128, x: C128, b: int) -> None:
        """Update R and P with one batch of signal 0 ((Fb, B, D) and (Fb, B, M)); solve G."""
        # λ: the power of the current filter's output (the talker's estimate), not of the
        # observation: weighting by 1/|x|² correlates the weights with the talker's own
        # frames and biases G towards zero (measured: a 0.8 echo came out as 0.5).
        err = x - y @ self._g_conj
        power = (err.real**2 + err.imag**2).mean(axis=2)  # (Fb, B)
        batch_level = power.mean(axis=1)
        if self._level is None:
            self._level = batch_level
        else:
            memory = self._level_memory
            self._level = memory * self._level + (1.0 - memory) * batch_level
        lam = np.maximum(power, POWER_FLOOR * self._level[:, None] + 1e-20)
        age = self.forget ** np.arange(b - 1, -1, -1, dtype=np.float64)  # newest frame weighs 1
        yw = y * (age / lam)[:, :, None]  # (Fb, B, D)
        ywt = yw.transpose(0, 2, 1)
        keep = self.forget**b
        self._r = keep * self._r + ywt @ y.conj()
        self._p = keep * self._p + ywt @ x.conj()
        before, self._hops = self._hops, self._hops + b
        if before // self._solve_every == self._hops // self._solve_every:
            return
        load = REGULARISE * np.trace(self._r, axis1=1, axis2=2).real / self._r.shape[1] + 1e-20
        loaded = self._r + load[:, None, None] * self._eye
        g: C128 = np.linalg.solve(loaded, self._p).astype(np.complex128, copy=False)
        self._g = g
        self._g_conj = g.conj()


def _bins(freqs: F64) -> int:
    return int(np.count_nonzero(freqs <= WPE_MAX_HZ))


class WpeMvdr(MvdrProcessor):
    """Multichannel WPE on the mics, then MVDR: the tracker, the gate and the noise
    covariance all see the dereverberated spectra."""

    def __init__(self, positions_m: F64, rate: int, batch: int = BATCH) -> None:
        super().__init__(positions_m, rate, batch)
        self.wpe = Wpe(
            self.channels, MULTI_TAPS, MULTI_DELAY, _bins(self.freqs), WPE_SOLVE_EVERY_HOPS,
            MULTI_FORGET, self.adapt_hops,
        )  # fmt: skip

    def _filter(self, spectra: C128) -> C128:
        return super()._filter(self.wpe.filter(spectra))


class MvdrWpe(MvdrProcessor):
    """MVDR, then single-channel WPE on the beam's output (one signal: the cheap form)."""

    def __init__(self, positions_m: F64, rate: int, batch: int = BATCH) -> None:
        super().__init__(positions_m, rate, batch)
        self.wpe = Wpe(
            1, SINGLE_TAPS, SINGLE_DELAY, _bins(self.freqs), WPE_SOLVE_EVERY_HOPS, SINGLE_FORGET,
            self.adapt_hops,
        )  # fmt: skip

    def _filter(self, spectra: C128) -> C128:
        beam = super()._filter(spectra)  # (K, B, F)
        out: C128 = self.wpe.filter(beam[:, None])[:, 0]
        return out
