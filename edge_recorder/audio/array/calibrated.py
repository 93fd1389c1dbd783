"""The calibrated beam: a multichannel Wiener filter towards the talker spots measured in the
room (array kind "calibrated", issue #23), with the shipped MVDR as the fallback elsewhere.

A blind beam knows only a free-field direction; the oracle ceilings showed that what keeps
SI-SDR near +2 dB is the room's transfer function from the talker, which a sweep measures
(`spots.py`). Per spot the calibration holds h (the transfer to each mic relative to the
direct sound at the array centre) and Ψ (the spot's spatial covariance per unit direct-sound
power: direct sound plus the reverberation as 32 ms frames see it). The beam is

    w = (φΨ + R)⁻¹ φh

(the multichannel Wiener filter for the direct sound at the centre, so it also trims the
late reverberation), with R the noise covariance learnt on the speech gate's noise frames
(as `MvdrProcessor`, 1 % diagonal loading) and φ the talker's direct-speech power per bin,
tracked on speech frames. Before any speech φ is unknown: R⁻¹h / hᴴR⁻¹h (the calibrated
MVDR); before any noise, h / hᴴh.

Which spot: the one under whose model (φΨ_k + R) the window's speech frames are most likely
(a Gaussian log-likelihood over every 6th bin of 300-4000 Hz, φ fitted per spot); another spot
must win by 10 nats. The prototype's evaluation found this right 98-100 % of the time within
5 cm of the spots, where the beam output SNR picked at chance and SRP-PHAT at the spots'
directions lost 1-4 dB to wrong picks.

Nowhere near a spot: a calibrated beam aimed at the wrong spot is far worse than a blind
one (-13 dB SI-SDR against the blind MVDR's -1.6 dB for a talker 90° off, the unit test's
room), and the likelihood only ranks the spots. So when the SRP-PHAT tracker (the blind
beams' own) points more than `FALLBACK_DEG` away from where it hears every calibrated spot,
the beam switches to the MVDR weights steered by the tracker (`MvdrProcessor`'s, from the
same covariance on the same grid) times the single-channel Wiener gain φ/(φ + σ²) of their
output. Two choices there came from the honest evaluation (`bench_farfield
--calibration-honest`, conversations of a calibrated and an uncalibrated talker):
- "every spot", not "the selected spot": the tracker needs two windows to follow a change of
  talker while the likelihood switches spots at once, so the old rule fell back to an MVDR
  steered at the previous talker at every turn (0.8 dB lost at the spot);
- the Wiener gain: the calibrated beam is a Wiener filter (its output is below the direct
  sound in noisy bins) and the plain MVDR is distortionless, so a recording alternating
  between them changed level at every turn, which cost 1-4 dB SI-SDR in conversations with
  one calibrated talker, more than the fallback saved.
"Where it hears the spot" is the tracker itself run on frames drawn from the spot's Ψ
(`heard_direction`), not the plane wave of its arrival times: in simulated rooms (RT60 0.5 s,
5 dB SNR, 5 layouts) the live tracker's angle to it for a talker on the spot was 3-6°
median, ≤ 10° at the 90th percentile, against 5-15° / 7-20° to the plane-wave fit (the 4-mic
board's reverberant bias). With the selected-spot rule 15° was right (the calibrated beam
stops beating the MVDR 5-15°, 10-35 cm, off the spot); with the every-spot rule and the
Wiener-gain fallback, 22° gained +0.24 / +0.50 / +0.28 dB at 0 / 10 / 20 cm on the 4-mic HAT
(4 rooms; 30° the same, the 6-mic HAT unchanged), with the worst room +0.7-1.3 dB better,
and an uncalibrated talker's figures unchanged.

Then a per-frame post-filter: the Wiener beam's gain follows φ, a power smoothed over ~0.8 s
of speech, so it cannot attenuate the gaps between syllables and the quiet bins of a word.
The decision-directed Wiener gain (`postfilter.PostFilteredMvdr`, which this beam extends;
floor -12 dB) does, per 16 ms frame, against the beam's output noise, which the beam knows
exactly from its weights and the gated noise covariance (σ² = wᴴRw: no noise tracking on the
output, so no lag when the weights change at a spot switch). In the honest evaluation (8
rooms, RT60 0.5 s, 5 dB SNR) it took the 4-mic HAT from +5.3 to +6.6 dB SI-SDR over the
channel average at the spots (6-mic +6.1 to +7.5 at the same cadence) and from +3.6 to +4.5
dB 10 cm away, with STOI unchanged or better (+0.099 → +0.107); tracking the output noise on
noise frames instead, as the blind post-filter did until then, gained 0.3 dB less and cost
0.02 STOI. The decision-directed weight 0.85 was the best of 0.8-0.95 within 0.05 dB (0.95
cost 0.01 STOI); the post-filter's 0.7 since 2026-12-07 left this beam's SI-SDR at the spots
unchanged and added +0.004 STOI (postfilter.py).

Everything adapts on the blind beams' windows of 16 hops (256 ms, `beamformers.ADAPT_HOPS`)
and solves on a fixed grid of hops (or at once when the spot or the fallback changes), so
small batches do not multiply the cost, and the output is bit-exact under any framing of the
input. How often it solves depends on the number of mics (`SOLVE_EVERY_SMALL`, `_LARGE`):
the budget, not the acoustics, set it. Until 2026-12-07 this beam adapted on 128 ms windows
(the blind kinds had moved to 256 ms); on 256 ms, choosing the spot on every window, the
honest evaluation (8 rooms, post-filter weight 0.7 on both sides) read on the 4-mic HAT
+6.5 → +6.9 dB at the spots, +4.7 → +5.1 at 10 cm and +1.9 → +2.4 at 20 cm, every room still
no worse than the plain mix; on the 6-mic HAT +7.4 → +7.3 at the spots and +5.5 → +5.6 at 10
cm; and the whole pipeline with 3 spots cost ~1.2-1.5 ms per audio-s less.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from edge_recorder.audio.array.calibration_file import (
    ArrayCalibration,
    CalibrationError,
    Spot,
    check_calibration,
    check_layout,
)
from edge_recorder.audio.array.doa import DirectionTracker
from edge_recorder.audio.array.geometry import arrival_times, search_grid
from edge_recorder.audio.array.postfilter import PostFilteredMvdr, output_noise
from edge_recorder.audio.array.stft import NFFT

F64 = npt.NDArray[np.float64]
C128 = npt.NDArray[np.complex128]

LOADING = 0.01  # diagonal loading of R for the Wiener filter and the selection
SPEECH_MEMORY = 0.98  # per speech hop: the direct-speech power φ (~0.8 s)
SWITCH_NATS = 10.0  # log-likelihood another spot must win by
# The selection looks at every 6th bin of the tracker's band (20 bins): against every 3rd,
# the same SI-SDR at the spots and -0.07 dB 10 cm off (4 rooms per HAT), for 0.26 ms of CPU
# per audio-s less on the 6-mic HAT, whose calibrated pipeline is at the 0.01 budget's edge.
SELECT_STRIDE = 6
# How often the Wiener filter is solved (hops, on a fixed grid; and at once when the spot or
# the fallback changes), by the number of mics; the spot is chosen on every window (256 ms).
# Six mics' 6x6 solves cost ~3 times four mics' 4x4: with the post-filter the 6-mic HAT's
# whole pipeline went over the 0.01 CPU-s per audio-s budget, so it solves every 32 hops,
# ~1 ms/s less for -0.4 dB SI-SDR at its spots (+7.5 → +7.1 dB, 8 rooms, when the windows
# were 128 ms and it also chose the spot on every 2nd one).
SOLVE_EVERY_SMALL = 16  # up to 4 mics
SOLVE_EVERY_LARGE = 32  # more than 4
HEARD_FRAMES = 64  # frames drawn from a spot's Ψ to find where the tracker hears it
FALLBACK_DEG = 22.0  # the tracker this far from every spot: the blind fallback (module doc)


def spot_direction(positions_m: F64, arrivals_s: F64) -> F64:
    """The front-half-space unit vector whose plane wave best fits the arrival times (least
    squares over a 1° grid, both sides centred): the spot's direction as the tracker sees it."""
    grid = search_grid(1.0, 1.0)  # the tracker's own half-space, at 1°
    model = arrival_times(positions_m, grid)
    model -= model.mean(axis=1, keepdims=True)
    error = np.sum((model - (arrivals_s - arrivals_s.mean())) ** 2, axis=1)
    best: F64 = grid[int(np.argmin(error))]
    return best


def heard_direction(positions_m: F64, freqs: F64, rate: int, spot: Spot) -> F64:
    """Where the live SRP-PHAT tracker will point for a talker at the spot: the tracker run
    on frames drawn from the spot's own statistics (Ψ, reverberation included, seeded), so
    its systematic error in this room (a strong reflection, the elevation of a flat array)
    is in the reference too. The plane wave of the arrival times if it finds no coherent
    source there."""
    values, vectors = np.linalg.eigh(spot.psi)  # (F, M), (F, M, M)
    root = vectors * np.sqrt(np.maximum(values, 0.0))[:, None, :]
    rng = np.random.default_rng(0)
    m = positions_m.shape[0]
    z = rng.standard_normal((freqs.size, m, HEARD_FRAMES))
    z = z + 1j * rng.standard_normal(z.shape)
    frames = (root @ z).transpose(1, 2, 0)  # (M, B, F)
    tracker = DirectionTracker(positions_m, freqs, rate, NFFT)
    tracker.update(frames, np.ones(HEARD_FRAMES, bool))
    if tracker.steered:
        return tracker.direction
    return spot_direction(positions_m, spot.arrivals_s)


class CalibratedBeam(PostFilteredMvdr):
    """The calibrated spots' Wiener beam, with the tracker-steered MVDR (and a Wiener gain)
    as the fallback off every spot."""

    def __init__(
        self, positions_m: F64, rate: int, batch: int, calibration: ArrayCalibration
    ) -> None:
        check_calibration(calibration)
        check_layout(calibration, positions_m)
        if rate != calibration.rate:
            raise CalibrationError(f"the calibration is for {calibration.rate} Hz, not {rate}")
        super().__init__(positions_m, rate, batch)
        self.solve_every = SOLVE_EVERY_SMALL if self.channels <= 4 else SOLVE_EVERY_LARGE
        spots = calibration.spots
        self.names: tuple[str, ...] = tuple(s.name for s in spots)
        self._h: C128 = np.stack([s.h for s in spots])  # (K, F, M)
        self._psi: C128 = np.stack([s.psi for s in spots])  # (K, F, M, M)
        self._psi_gain: F64 = np.trace(self._psi, axis1=2, axis2=3).real / self.channels
        self._psi_gain_floor: F64 = np.maximum(self._psi_gain, 1e-30)  # φ's divisor per spot
        self._bins = np.flatnonzero(self.tracker.band)[::SELECT_STRIDE]
        self._psi_band: C128 = np.ascontiguousarray(self._psi[:, self._bins])
        self._psi_band_trace: F64 = np.trace(self._psi_band, axis1=2, axis2=3).real
        self.directions: F64 = np.stack(
            [heard_direction(positions_m, self.freqs, rate, s) for s in spots]
        )
        self._unit_directions = self.directions / np.linalg.norm(self.directions, axis=1)[:, None]
        self._fallback_cos = math.cos(math.radians(FALLBACK_DEG))
        self._phi: F64 = np.zeros((len(spots), self.freqs.size))  # direct-speech power per spot
        self._phi_updates = [0] * len(spots)  # per spot: how often φ changed (the solve cache)
        self._phi_blind: F64 = np.zeros(self.freqs.size)  # speech power over noise, per mic
        self._phi_blind_updates = 0
        # Solved weights per (blind, spot) with the inputs they were solved from: a solve on
        # the same inputs gives the same bits, so it is skipped (most ticks, spot flips back).
        self._solved: dict[tuple[bool, int], tuple[tuple[int, int, int], C128]] = {}
        self._seen: list[object] = [None, None]  # the covariance and steering `_solve` last saw
        self._generations = [0, 0]  # and how often each was replaced
        # The loaded noise covariance and its per-bin figures, for the covariance object
        # they were made from: the selection, φ and the weights share one computation.
        self._loaded_of: C128 | None = None
        self._loaded_full: C128 = np.zeros((0, self.channels, self.channels), complex)
        self._noise_power: F64 = np.zeros(0)  # mean mic power per bin (unloaded)
        self._loaded_trace: F64 = np.zeros(0)  # trace of the loaded covariance per bin
        self.spot = 0  # the selected spot (index into `names`)
        self.blind = False  # this window uses the blind fallback: the talker is off every spot
        self.windows = 0  # adaptation windows so far, and how many of them were blind
        self.blind_windows = 0
        self.weights = self._weights()

    def _adapt(self, drive: C128, noise: npt.NDArray[np.bool_], *, steered: bool) -> None:
        self._update_noise(drive, noise)
        before, self._hops = self._hops, self._hops + drive.shape[1]
        tick = before // self.solve_every != self._hops // self.solve_every
        spot, blind = self.spot, self.blind
        speech = self.speech_frames
        if self._covariance is not None and speech.any():
            x = drive[:, speech]
            if len(self.names) > 1:
                self._select(x)
            self._track_speech(x)
        if self.balance.live_count < self.channels:  # a mic left out: the spots' model fails
            self.blind = True
        elif self.tracker.steered:  # off every spot by more than FALLBACK_DEG
            u = self.tracker.direction
            cos = self._unit_directions @ u / float(np.linalg.norm(u))
            self.blind = bool(np.max(cos) < self._fallback_cos)
        else:
            self.blind = False
        self.windows += 1
        self.blind_windows += self.blind
        if tick or spot != self.spot or blind != self.blind:
            self.weights = self._solve()

    def _noise_figures(self) -> C128:
        """The loaded noise covariance, its mean mic power and loaded trace per bin, made
        once per covariance (it is replaced, never changed in place, on every update)."""
        r = self._covariance
        assert r is not None
        if self._loaded_of is not r:
            power = np.trace(r, axis1=1, axis2=2).real / self.channels
            self._loaded_full = r + (LOADING * power + 1e-20)[:, None, None] * self._eye
            self._loaded_trace = np.trace(self._loaded_full, axis1=1, axis2=2).real
            self._noise_power = power
            self._loaded_of = r
        return self._loaded_full

    def _loaded(self, bins: npt.NDArray[np.intp] | slice = slice(None)) -> C128:
        """The noise covariance (of `bins`) with LOADING x its mean mic power on the diagonal."""
        loaded: C128 = self._noise_figures()[bins]
        return loaded

    def _select(self, x: C128) -> None:
        """The spot whose model φΨ_k + R makes the speech frames x (M, S, F) most likely."""
        xb = np.ascontiguousarray(x[:, :, self._bins].transpose(2, 0, 1))  # (Fb, M, S)
        frames = x.shape[1]
        rx = (xb @ xb.conj().transpose(0, 2, 1)) / frames  # (Fb, M, M)
        rn = self._loaded(self._bins)
        excess = np.trace(rx, axis1=1, axis2=2).real - self._loaded_trace[self._bins]
        phi = np.maximum(excess, 1e-12) / self._psi_band_trace  # (K, Fb)
        model = phi[:, :, None, None] * self._psi_band + rn[None]  # (K, Fb, M, M)
        _, logdet = np.linalg.slogdet(model)
        fit = np.trace(np.linalg.solve(model, rx[None]), axis1=2, axis2=3).real
        score = -np.sum(logdet + fit, axis=1) * frames
        best = int(np.argmax(score))
        if best != self.spot and score[best] > score[self.spot] + SWITCH_NATS:
            self.spot = best

    def _track_speech(self, x: C128) -> None:
        """φ of the selected spot: speech power minus noise power per bin, per unit of the
        spot's power gain, averaged recursively over speech frames."""
        self._noise_figures()
        power = np.mean(x.real**2 + x.imag**2, axis=(0, 1))  # (F,)
        phi = np.maximum(power - self._noise_power, 0.0) / self._psi_gain_floor[self.spot]
        keep = SPEECH_MEMORY ** x.shape[1]
        old = self._phi[self.spot]
        self._phi[self.spot] = phi if not old.any() else keep * old + (1.0 - keep) * phi
        self._phi_updates[self.spot] += 1
        # the blind fallback's speech power: the same, without a spot's power gain
        blind = np.maximum(power - self._noise_power, 0.0)
        old = self._phi_blind
        self._phi_blind = blind if not old.any() else keep * old + (1.0 - keep) * blind
        self._phi_blind_updates += 1

    def _solve(self) -> C128:
        """`_weights()`, or the weights last solved for this spot and mode from the same
        covariance, φ and steering: the same bits without the solve."""
        for i, now in enumerate((self._covariance, self._steering)):
            if now is not self._seen[i]:  # both are replaced, never changed in place
                self._seen[i] = now
                self._generations[i] += 1
        covariance, steering = self._generations
        if self.blind:  # the blind MVDR and its gain: covariance, steering, speech power
            inputs = (covariance, steering, self._phi_blind_updates)
        else:  # the calibrated beam: covariance and this spot's φ
            inputs = (covariance, 0, self._phi_updates[self.spot])
        key = (self.blind, self.spot)
        held = self._solved.get(key)
        if held is not None and held[0] == inputs:
            return held[1]
        weights = self._weights()
        self._solved[key] = (inputs, weights)
        return weights

    def _weights(self) -> C128:
        if self.blind:
            return self._blind_weights()
        h = self._h[self.spot]
        if self._covariance is None:  # no noise seen yet: distortionless matched filter
            weights: C128 = h / np.einsum("fm,fm->f", h.conj(), h).real[:, None]
            return weights
        r = self._loaded()
        phi = self._phi[self.spot]
        if not phi.any():  # no speech seen yet: the calibrated MVDR
            z = np.linalg.solve(r, h[:, :, None])[:, :, 0]
            weights = z / np.einsum("fm,fm->f", h.conj(), z)[:, None]
            return weights
        model = r + phi[:, None, None] * self._psi[self.spot]
        weights = np.linalg.solve(model, (phi[:, None] * h)[:, :, None])[:, :, 0]
        return weights

    def _blind_weights(self) -> C128:
        """MvdrProcessor's weights on the tracker, times the single-channel Wiener gain
        φ / (φ + σ²) of their output (σ² = wᴴRw): the same kind of gain the calibrated
        Wiener beam applies, so a recording that alternates between a calibrated and an
        uncalibrated talker keeps one level (the distortionless MVDR alone cost 1-2 dB
        SI-SDR in such conversations against the Wiener beam's segments)."""
        weights = self._mvdr_weights()
        if self._covariance is None or not self._phi_blind.any():
            return weights
        noise = output_noise(weights, self._covariance)
        phi = self._phi_blind
        gain = phi / np.maximum(phi + noise, 1e-30)
        blind: C128 = weights * gain[:, None]
        return blind


__all__ = ["FALLBACK_DEG", "CalibratedBeam", "spot_direction"]
