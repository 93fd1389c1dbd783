"""A single-channel Wiener post-filter on the beam: what the nulls could not remove.

MVDR removes point sources and keeps the talker undistorted, but diffuse noise (a room's
ventilation, reverberation, every mic's own hiss) passes nearly as it came: six mics buy at
most ~8 dB against it. The post-filter estimates the beam's noise spectrum on the gate's
noise frames and attenuates each bin by a decision-directed Wiener gain (Ephraim-Malah's
a-priori SNR smoothing, which keeps "musical noise" down), never below `GAIN_FLOOR`: a mild
floor, because speech recognisers dislike deep spectral gaps more than they dislike noise.
Frames are handled one after another inside a batch, so the state still evolves per hop.
The gain step (`decision_directed_gains`) is shared with the calibrated beam, which knows its
output noise from its weights instead of tracking it.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from edge_recorder.audio.array.beamformers import MvdrProcessor
from edge_recorder.audio.array.dereverb import MvdrWpe
from edge_recorder.audio.array.doa import SpeechGate
from edge_recorder.audio.array.stft import BATCH

F64 = npt.NDArray[np.float64]
C128 = npt.NDArray[np.complex128]

GAIN_FLOOR = 10 ** (-12 / 20)  # -12 dB
NOISE_SMOOTHING = 0.9  # per noise hop
DECISION_DIRECTED = 0.95  # weight of the previous frame's clean-speech estimate


def decision_directed_gains(
    power: F64, inverse_noise: F64, clean: F64, smoothing: float = DECISION_DIRECTED
) -> tuple[F64, F64]:
    """The Wiener gain per frame and bin (at least `GAIN_FLOOR`) of B frames' power (B, F),
    given 1 / the noise power (F,) and the clean-speech power of the frame before (F,)
    (Ephraim-Malah's a-priori SNR); and the last frame's clean-speech power, for the next
    call. Only the a-priori recursion runs frame by frame."""
    measured = (1 - smoothing) * np.maximum(power * inverse_noise - 1.0, 0.0)  # (B, F)
    carried = smoothing * inverse_noise
    gains = np.empty_like(power)
    for b in range(power.shape[0]):
        prior = carried * clean
        prior += measured[b]
        gain = gains[b]
        np.divide(prior, prior + 1.0, out=gain)
        np.maximum(gain, GAIN_FLOOR, out=gain)
        clean = gain * gain * power[b]
    return gains, clean


class PostFilteredMvdr(MvdrProcessor):
    """MVDR followed by a Wiener post-filter driven by the beam's own noise frames."""

    def __init__(self, positions_m: F64, rate: int, batch: int = BATCH) -> None:
        super().__init__(positions_m, rate, batch)
        # The post-filter needs each batch's noise mask. When the beam adapts on longer
        # windows than the batch (small batches, low latency), a gate of its own gives it;
        # otherwise the beam's gate has just classified exactly this batch.
        self._gate: SpeechGate | None = (
            SpeechGate(self.tracker.band) if self.adapt_hops != batch else None
        )
        self._noise: F64 | None = None  # beam-output noise power per bin
        self._clean: F64 = np.zeros(self.freqs.size)  # previous frame's |G·Y|²

    def _filter(self, spectra: C128) -> C128:
        beam = super()._filter(spectra)  # (K, B, F)
        power = beam[0].real ** 2 + beam[0].imag ** 2
        mask = self.noise_frames if self._gate is None else self._gate.update(spectra[0])[1]
        noise_frames = mask.tolist()
        for b in range(beam.shape[1]):  # sequential: the noise estimate evolves per hop
            if noise_frames[b]:
                self._noise = (
                    power[b]
                    if self._noise is None
                    else NOISE_SMOOTHING * self._noise + (1 - NOISE_SMOOTHING) * power[b]
                )
            if self._noise is None:
                continue  # no noise seen yet: pass through
            gain, self._clean = decision_directed_gains(
                power[b : b + 1], 1.0 / (self._noise + 1e-30), self._clean
            )
            beam[:, b] *= gain[0]
        return beam


class PostFilteredMvdrWpe(PostFilteredMvdr, MvdrWpe):
    """MVDR, single-channel WPE on the beam, then the Wiener post-filter: the noise left
    between words and the late reverberation are both attenuated (the MRO runs MvdrWpe's
    filter inside PostFilteredMvdr's)."""
