"""The candidate array processors: plain average, delay-and-sum, MVDR.

"average" is today's equal mix, kept sample-exact so switching the stage off changes nothing.
"das" aligns the microphones on the tracked talker (a phase shift per bin, so fractional
delays are exact) and averages them: the talker adds up coherently, uncorrelated noise and
sources from elsewhere do not. It cannot amplify noise, and it degrades gracefully when the
direction is a little off. "mvdr" keeps the talker's direction undistorted too but places
nulls on what the noise frames contain (a fan, a monitor, a second voice in the pauses):
w = R⁻¹a / (aᴴR⁻¹a), with R the noise covariance and diagonal loading so that a steering
error or a short covariance estimate does not turn into cancelling the talker.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from edge_recorder.audio.array.doa import DirectionTracker, SpeechGate
from edge_recorder.audio.array.geometry import steering
from edge_recorder.audio.array.mic_balance import MicBalance
from edge_recorder.audio.array.stft import BATCH, HOP, NFFT, StftBank, apply_weights

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]
C128 = npt.NDArray[np.complex128]

NOISE_MEMORY = 0.99  # per noise hop: the covariance forgets with a ~1.6 s time constant
LOADING = 0.05  # diagonal loading, relative to the mean noise power per mic and bin
# Hops (256 ms) of spectra per adaptation step, whatever the transform batch. Each step costs
# the same number of numpy calls whatever its length, so the window sets most of the beams'
# CPU besides the transforms: 256 ms windows cost 0.7-1.5 ms per audio-s less than 128 ms
# ones for every kind (6 mics), and the full far-field set scored the same or a little
# better, with the tracker still judging jumps on 128 ms pieces (doa.py; docs/audio.md).
ADAPT_HOPS = 16
TRACK_HOPS = 8  # hops (128 ms) per piece of the direction tracker's evidence (doa.py)
SOLVE_EVERY_HOPS = 16  # hops (256 ms at 16 kHz) between MVDR weight updates, on a fixed grid


class AverageProcessor:
    """Equal mix of the microphones: the pipeline's historical behaviour, no delay."""

    def __init__(self, channels: int) -> None:
        self.channels = channels
        self.delay_samples = 0
        self._weight = np.float32(1.0 / channels)

    def process(self, block: F32) -> F32:
        if block.shape[1] != self.channels:
            raise ValueError(f"expected {self.channels} channels, got {block.shape[1]}")
        mono = np.zeros(block.shape[0], np.float32)
        for ch in range(self.channels):  # the same float32 operations as Dsp's mix
            mono += block[:, ch] * self._weight
        return mono


class DasProcessor(StftBank):
    """Delay-and-sum steered by the SRP-PHAT tracker.

    Adaptation (gate, tracker, noise covariance, weights) runs on windows of `adapt_hops`
    hops (at least ADAPT_HOPS, a whole number of batches) gathered from the transform
    batches, so a small batch buys latency without multiplying the adaptation's cost or
    changing what it sees; the weights then filter the following batches.
    """

    def __init__(self, positions_m: F64, rate: int, batch: int = BATCH) -> None:
        super().__init__(positions_m.shape[0], rate, batch)
        self.positions = positions_m
        self.adapt_hops = batch * -(-ADAPT_HOPS // batch)
        window_s = self.adapt_hops * HOP / rate
        pieces = max(1, self.adapt_hops // TRACK_HOPS)
        self.tracker = DirectionTracker(positions_m, self.freqs, rate, NFFT, pieces)
        self.gate = SpeechGate(self.tracker.band)
        self._steered_at: F64 | None = None
        self._steering: C128 = steering(positions_m, self.tracker.direction, self.freqs)
        self.weights: C128 = self._steering / self.channels
        self.noise_frames: npt.NDArray[np.bool_] = np.zeros(0, bool)  # of the last window
        self.speech_frames: npt.NDArray[np.bool_] = np.zeros(0, bool)  # of the last window
        self._pending: list[C128] = []  # the drive's spectra of the open adaptation window
        # each mic's level against the others: gains in the steering, faulty mics left out
        self.balance = MicBalance(self.channels, window_s)

    def _filter(self, spectra: C128) -> C128:
        self._pending.append(spectra[0])
        if len(self._pending) * self.batch >= self.adapt_hops:
            drive = (
                self._pending[0] if len(self._pending) == 1 else np.concatenate(self._pending, 1)
            )
            self._pending = []
            self._adapt_window(drive)
        return apply_weights(spectra, self.weights)

    def _adapt_window(self, drive: C128) -> None:
        """One adaptation step on (M, hops, F) spectra of the driving signal."""
        speech, noise = self.gate.update(drive)
        self.noise_frames = noise
        self.speech_frames = speech
        rebalanced = self.balance.update(self.gate.mic_power)
        if rebalanced:
            self.gate.use_mics(self.balance.live)
            self.tracker.use_mics(self.balance.live)
        self.tracker.update(drive, speech)
        if rebalanced or self._steered_at is not self.tracker.direction:
            self._steered_at = self.tracker.direction
            self._steering = steering(self.positions, self._steered_at, self.freqs)
            if self.balance.decided:  # the model of what each mic hears: its gain, or 0
                self._steering = self._steering * self.balance.gains
            self._adapt(drive, noise, steered=True)
        else:
            self._adapt(drive, noise, steered=False)

    def _adapt(self, drive: C128, noise: npt.NDArray[np.bool_], *, steered: bool) -> None:
        if steered:
            self.weights = self._steering / self._steering_power()

    def _steering_power(self) -> float:
        """aᴴa of the (gain-weighted, unit-phase) steering: the mic count when all match."""
        if not self.balance.decided:
            return float(self.channels)
        return float(np.sum(self.balance.gains**2))


class MvdrProcessor(DasProcessor):
    """MVDR on the tracked direction, noise covariance from the gate's noise frames."""

    def __init__(self, positions_m: F64, rate: int, batch: int = BATCH) -> None:
        super().__init__(positions_m, rate, batch)
        self._covariance: C128 | None = None
        m = self.channels
        self._eye = np.eye(m)[None]
        self._stale = False  # steering or covariance changed since the weights were solved
        self._hops = 0

    def _adapt(self, drive: C128, noise: npt.NDArray[np.bool_], *, steered: bool) -> None:
        count = self._update_noise(drive, noise)
        self._stale = self._stale or steered or count > 0
        before, self._hops = self._hops, self._hops + drive.shape[1]
        if not self._stale or before // SOLVE_EVERY_HOPS == self._hops // SOLVE_EVERY_HOPS:
            return  # the weights are solved on a fixed grid of hops: a fraction of the CPU
        self._stale = False
        self.weights = self._mvdr_weights()

    def _update_noise(self, drive: C128, noise: npt.NDArray[np.bool_]) -> int:
        """Fold the window's noise frames into the noise covariance; how many there were."""
        count = int(noise.sum())
        if count:
            x = drive[:, noise]  # (M, count, F)
            # Σ x xᴴ over the frames as broadcast products: for 4-8 mics, faster than 257
            # small batched matmuls (145 against 193 µs per 6-mic window) and exactly Hermitian
            outer: C128 = (x[:, None] * x.conj()[None]).sum(axis=2)  # (M, M, F)
            batch: C128 = np.ascontiguousarray(outer.transpose(2, 0, 1)) / count
            if self._covariance is None:
                self._covariance = batch
            else:
                keep = NOISE_MEMORY**count
                self._covariance = keep * self._covariance + (1.0 - keep) * batch
        return count

    def _mvdr_weights(self) -> C128:
        """MVDR weights on the current steering (delay-and-sum before any noise was seen)."""
        if self._covariance is None:
            return self._steering / self._steering_power()
        if self.balance.live_count < self.channels:  # MVDR on the mics left in
            keep = np.flatnonzero(self.balance.live)
            weights = np.zeros_like(self._steering)
            weights[:, keep] = _mvdr(
                self._covariance[:, keep[:, None], keep], self._steering[:, keep], self._eye
            )
            return weights
        return _mvdr(self._covariance, self._steering, self._eye)


def _mvdr(r: C128, a: C128, eye: F64) -> C128:
    """w = R⁻¹a / (aᴴR⁻¹a) per bin for (F, M, M) noise covariance and (F, M) steering, with
    LOADING x the mean mic power on the diagonal."""
    m = a.shape[1]
    power = np.trace(r, axis1=1, axis2=2).real / m  # (F,)
    loaded = r + (LOADING * power + 1e-20)[:, None, None] * eye[:, :m, :m]
    z = np.linalg.solve(loaded, a[:, :, None])[:, :, 0]
    gain = np.einsum("fm,fm->f", a.conj(), z)
    weights: C128 = z / gain[:, None]  # aᴴR⁻¹a is real: R is Hermitian
    return weights
