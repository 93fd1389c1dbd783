"""Who is talking, and from where: an energy gate and an SRP-PHAT direction tracker.

The gate tells frames of likely speech (direct sound well above the noise floor) from frames
of likely noise (at the floor); both are decided from the signal alone, so they are
deterministic. The floor follows the quietest recent frames: it drops at once to a quieter
frame and rises by ~5 dB/s, so a steady fan or a television becomes "the floor" in seconds.

The tracker scores every direction of a grid over the front half-space (5° azimuth, 10°
elevation) with SRP-PHAT: the phase-transform cross-spectra of the speech frames of a batch,
turned into generalized cross-correlations (at a quarter-sample resolution, only at the lags
the array's size allows), read at each direction's pair delays; the best grid point is then
refined on a 1°/2° patch. A score near 1 means one coherent source; diffuse noise and
reverberation score low. The beam moves only on batches with enough speech frames and a
coherent peak: a small move is smoothed in, a jump elsewhere must be confirmed by two
consecutive batches and beat the current direction's own score, so a cough or a door does
not swing the beam away from the talker. A flat array measures elevation poorly near its
horizon (the delays change with its cosine), which costs little: neither do the steering
delays.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from edge_recorder.audio.array.geometry import (
    SPEED_OF_SOUND,
    angle_deg,
    arrival_times,
    search_grid,
)

F64 = npt.NDArray[np.float64]
C128 = npt.NDArray[np.complex128]
B8 = npt.NDArray[np.bool_]

BAND_HZ = (300.0, 4000.0)  # speech's direct sound: below, the array has no resolution
SPEECH_OVER_FLOOR = 4.0  # power ratio: 6 dB above the floor is speech
NOISE_OVER_FLOOR = 1.5  # power ratio: within 1.8 dB of the floor (and its neighbours) is noise
FLOOR_RISE = 1.02  # per hop (16 ms): ~5 dB/s
# Band energy of a frame (all mics) below which it is digital silence, not a noise floor
# (~50 dB under a 16-bit converter's last bit): it must not drag the floor down for the
# next half minute.
DEAD_ENERGY = 1e-9
_UPSAMPLE = 4
MIN_SPEECH_FRAMES = 2  # per batch, to steer at all
MIN_COHERENCE = 0.3  # SRP-PHAT peak (1 = one perfectly coherent source)
NEAR_DEG = 20.0  # closer than this: smooth towards it; farther: a jump, to be confirmed
SMOOTHING = 0.5
CONFIRM_BATCHES = 2
JUMP_MARGIN = 1.1  # a jump's score must beat the current direction's by this factor
_FINE_AZ = np.radians(np.arange(-4.0, 4.5, 1.0))
_FINE_EL = np.radians(np.arange(-8.0, 8.5, 2.0))


class SpeechGate:
    """Per-frame speech / noise decision from band energy against a tracked floor."""

    def __init__(self, band: npt.NDArray[np.bool_]) -> None:
        self._band = band
        self.floor = 0.0
        self._quiet = False  # the previous batch's last frame
        self.mic_power: F64 = np.zeros(0)  # each mic's mean band power in the last batch
        self._live: B8 | None = None  # None: every mic counts (none left out of the beam)

    def use_mics(self, live: B8) -> None:
        """Decide on the `live` mics only: a loud faulty mic would hide every word."""
        self._live = None if live.all() else live.copy()

    def update(self, spectra: C128) -> tuple[B8, B8]:
        """(M, B, F) spectra of one batch → (speech, noise) masks over its B frames."""
        power = spectra.real[:, :, self._band] ** 2 + spectra.imag[:, :, self._band] ** 2
        self.mic_power = power.mean(axis=(1, 2))
        live = power if self._live is None else power[self._live]
        energies = live.sum(axis=(0, 2)).tolist()
        speech, quiet = [], []
        floor = self.floor
        for energy in energies:  # sequential on purpose: the floor evolves per hop
            if energy < DEAD_ENERGY:  # digital silence or a filled gap: no evidence at all
                speech.append(False)
                quiet.append(False)
                continue
            floor = energy if floor <= 0.0 or energy < floor else floor * FLOOR_RISE
            speech.append(energy > SPEECH_OVER_FLOOR * floor)
            quiet.append(energy < NOISE_OVER_FLOOR * floor)
        self.floor = floor
        # noise: quiet and next to quiet frames on both sides (the frame after a batch is
        # unknown: not noise), so the soft edges of words do not leak into the noise estimate
        before = [self._quiet, *quiet[:-1]]
        after = [*quiet[1:], False]
        noise = [q and b and a for q, b, a in zip(quiet, before, after, strict=True)]
        self._quiet = quiet[-1]
        return np.array(speech), np.array(noise)


class DirectionTracker:
    """Look direction (unit vector, z ≥ 0) that follows the talker, updated per batch."""

    def __init__(self, positions_m: F64, freqs: F64, rate: int, nfft: int, pieces: int = 1) -> None:
        m = positions_m.shape[0]
        # Pieces per update (of 128 ms each, whatever the caller's window): a small move goes
        # SMOOTHING of the way per piece, and a jump needs CONFIRM_BATCHES pieces in a row
        # (a door slam fills one; `_confirmed`), so the beam follows turns alike in seconds.
        self._pieces = pieces
        self._smoothing = 1.0 - (1.0 - SMOOTHING) ** pieces
        self._i, self._j = (np.array(a) for a in np.triu_indices(m, 1))
        self._band = (freqs >= BAND_HZ[0]) & (freqs <= BAND_HZ[1])
        self._positions = positions_m
        self._lag_per_s = rate * _UPSAMPLE
        # Only lags the geometry allows are ever read: the GCC is evaluated there directly
        # (a small matrix product) rather than by a full zero-padded inverse FFT.
        aperture = float(np.max(np.linalg.norm(positions_m[:, None] - positions_m[None], axis=2)))
        self._reach = math.ceil(aperture / SPEED_OF_SOUND * self._lag_per_s) + 1
        lags = np.arange(-self._reach, self._reach + 2) / self._lag_per_s  # seconds
        basis = np.exp(2j * np.pi * np.outer(freqs[self._band], lags)) / max(1, self._band.sum())
        # Re(phat @ basis) as one real product: OpenBLAS's small complex products are slow
        self._gcc_basis = np.concatenate([basis.real, -basis.imag])  # (2·Fb, lags)
        self.grid = search_grid()
        self._grid_lags = self._lags(arrival_times(positions_m, self.grid))  # (G, P)
        self.direction: F64 = np.array([0.0, 0.0, 1.0])  # broadside: DAS = the plain average
        self.score = 0.0
        self.steered = False
        self._pending: F64 | None = None
        self._pending_count = 0
        self._pair_weights: F64 | None = None  # None: every pair counts alike (all mics live)

    def use_mics(self, live: B8) -> None:
        """Score directions on the pairs of `live` mics only (a mic left out of the beam,
        `mic_balance`, would pull every score down, or towards its own noise)."""
        pairs = (live[self._i] & live[self._j]).astype(np.float64)
        if pairs.all():
            self._pair_weights = None
        else:
            self._pair_weights = pairs / max(1.0, float(pairs.sum()))

    @property
    def usable(self) -> bool:
        """At least one pair of live mics to find a direction with."""
        return self._pair_weights is None or bool(self._pair_weights.any())

    @property
    def band(self) -> npt.NDArray[np.bool_]:
        return self._band

    def _lags(self, times: F64) -> F64:
        """Pair delays (t_i - t_j) in upsampled samples, as indexes into the GCC rows."""
        lags: F64 = (times[..., self._i] - times[..., self._j]) * self._lag_per_s + self._reach
        return lags

    def _read(self, gcc: F64, lags: F64) -> F64:
        """Mean over pairs of the GCCs at (fractional) lags: the SRP-PHAT score."""
        floor = np.floor(lags)
        frac = lags - floor
        low = floor.astype(np.intp)
        width = gcc.shape[1]
        flat = gcc.reshape(-1)
        index = np.arange(gcc.shape[0]) * width + low
        a = flat[index]
        b = flat[index + 1]
        if self._pair_weights is not None:
            weighted: F64 = (a + frac * (b - a)) @ self._pair_weights
            return weighted
        score: F64 = (a + frac * (b - a)).mean(axis=-1)
        return score

    def update(self, spectra: C128, speech: B8) -> None:
        """One batch: (M, B, F) spectra and its speech mask."""
        count = int(speech.sum())
        if count < MIN_SPEECH_FRAMES or not self.usable:
            return
        x = spectra[:, speech][:, :, self._band]  # (M, S, Fb)
        cross = x[self._i] * x[self._j].conj()  # (P, S, Fb)
        cross /= np.maximum(np.abs(cross), 1e-30)  # the phase transform, per frame
        gcc = self._gcc(cross.mean(axis=1))
        scores = self._read(gcc, self._grid_lags)
        best = int(np.argmax(scores))
        peak = float(scores[best])
        if peak < MIN_COHERENCE:
            return
        candidate, peak = self._refine(gcc, self.grid[best], peak)
        if not self.steered:
            self._set(candidate, peak)
            return
        if angle_deg(candidate, self.direction) <= NEAR_DEG:
            moved = self.direction + self._smoothing * (candidate - self.direction)
            self._set(moved / np.linalg.norm(moved), peak)
            return
        if self._pieces > 1:
            confirmed = self._confirmed(candidate, cross, speech)
        else:  # one piece per update: the updates themselves must agree
            if self._pending is not None and angle_deg(candidate, self._pending) <= NEAR_DEG:
                self._pending_count += 1
            else:
                self._pending, self._pending_count = candidate, 1
            confirmed = self._pending_count >= CONFIRM_BATCHES
        if confirmed and peak > JUMP_MARGIN * max(self._score(gcc, self.direction), 0.0):
            self._set(candidate, peak)

    def _score(self, gcc: F64, u: F64) -> float:
        return float(self._read(gcc, self._lags(arrival_times(self._positions, u))))

    def _gcc(self, phat: C128) -> F64:
        """(P, Fb) mean phase-transformed cross-spectra → (P, lags) correlations."""
        gcc: F64 = np.concatenate([phat.real, phat.imag], axis=1) @ self._gcc_basis
        return gcc

    def _confirmed(self, candidate: F64, cross: C128, speech: B8) -> bool:
        """Whether a jump to `candidate` has lasted CONFIRM_BATCHES pieces in a row: each
        piece of this update with speech in it must score the candidate over the current
        direction (the whole update, JUMP_MARGIN over it: `update`), counted across updates
        while the candidate stays put. Scored on its own piece, a slam is one piece however
        long the window (scored on the whole 256 ms window, one 128 ms slam swung the beam)."""
        if self._pending is None or angle_deg(candidate, self._pending) > NEAR_DEG:
            self._pending, self._pending_count = candidate, 0
        both = self._lags(arrival_times(self._positions, np.stack([candidate, self.direction])))
        flags: list[bool] = speech.tolist()
        size = -(-len(flags) // self._pieces)
        start = 0  # the piece's first speech frame among `cross`'s
        for piece in range(0, len(flags), size):
            count = sum(flags[piece : piece + size])
            if count >= MIN_SPEECH_FRAMES:
                gcc = self._gcc(cross[:, start : start + count].mean(axis=1))
                new, current = self._read(gcc, both).tolist()
                agrees = new > current
                self._pending_count = self._pending_count + 1 if agrees else 0
            start += count
        return self._pending_count >= CONFIRM_BATCHES

    def _refine(self, gcc: F64, u: F64, peak: float) -> tuple[F64, float]:
        """Search a fine patch (±4° azimuth, ±8° elevation) around the best grid point."""
        az = math.atan2(u[1], u[0]) + _FINE_AZ
        el = np.clip(math.asin(min(1.0, u[2])) + _FINE_EL, 0.0, math.pi / 2)
        cos_el = np.cos(el)
        patch = np.stack(
            [
                np.outer(cos_el, np.cos(az)),
                np.outer(cos_el, np.sin(az)),
                np.outer(np.sin(el), np.ones_like(az)),
            ],
            axis=-1,
        ).reshape(-1, 3)
        scores = self._read(gcc, self._lags(arrival_times(self._positions, patch)))
        best = int(np.argmax(scores))
        if float(scores[best]) <= peak:
            return u, peak
        return patch[best], float(scores[best])

    def _set(self, u: F64, score: float) -> None:
        self.direction, self.score, self.steered = u, score, True
        self._pending, self._pending_count = None, 0
