"""Spot calibration as a device could do it (issue #23): a technician's loudspeaker plays a
known sweep at each talker spot, the device derives per-bin spatial statistics of that spot,
and a streaming beam uses them live. Prototype for `edge-recorder calibrate-array`.

Why this form. The oracle ceilings say a linear per-bin filter reaches the goal once it knows
the room's transfer function from the talker's spot; `calibrated.py` learnt it from the
talker's own speech, which a device never has. Here the device only knows the signal it asked
to be played, so:

- `measure_responses` (now device code, `edge_recorder/audio/array/spots.py`, as are
  `direct_path` and `spot_from_responses`, this module's `spot_statistics`): regularised
  spectral division of the recording by the sweep gives each mic's impulse response
  (loudspeaker x room), wherever in the recording the sweep started
  (no sync with the player; a start offset only shifts every response alike).
- `direct_path`: the first ~3 ms after the strongest arrival is the direct sound through the
  loudspeaker; averaged over the mics after undoing their relative delays it is the direct
  sound at the array centre. Dividing by it removes the loudspeaker's (and the sweep's)
  spectrum: what is left, h = G / D, is the room only, relative to its direct sound, which is
  what the scoring reference and a listener want.
- `spot_statistics`: h and Ψ = E[x xᴴ] / E[|D|²] per STFT bin (the spot's spatial covariance
  per unit direct-sound power: direct + early + late reverberation as the 512-point frames
  see them), computed by driving the measured responses with white noise. Bins outside the
  loudspeaker's band get a free-field plane wave from the measured direction instead.
- `CalibratedBeam`: per 128 ms window the shipped speech gate, a noise covariance R from its
  noise frames, the spot whose distortionless beam gives the highest output SNR, and weights
  of one of three designs, solved every 256 ms on a fixed grid (chunk-invariant like every
  `StftBank`): `mvdr` R⁻¹h / hᴴR⁻¹h; `mvdr-rev` the same against R + φ(Ψ - hhᴴ) (late
  reverberation as interference, φ the live direct-speech power); `mwf` (φΨ + R)⁻¹φh.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt

from edge_recorder.audio.array.calibration_file import Spot
from edge_recorder.audio.array.doa import SpeechGate
from edge_recorder.audio.array.spots import free_field as _free_field
from edge_recorder.audio.array.spots import spot_from_responses
from edge_recorder.audio.array.stft import BATCH, StftBank, apply_weights

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]
C128 = npt.NDArray[np.complex128]
Bools = npt.NDArray[np.bool_]
RATE = 16000
DESIGNS = ("mvdr", "mvdr-rev", "mwf")
LOADING = 0.01  # relative diagonal loading of the live noise covariance
SOLVE_EVERY_HOPS = 16
SWITCH_SRP = 1.05  # SRP power ratio for a switch
SWITCH_NATS = 10.0  # log-likelihood another spot must beat the current one by
NOISE_MEMORY = 0.99  # per noise hop (the shipped beams' ~1.6 s)
SPEECH_MEMORY = 0.98  # per speech hop: the direct-speech power estimate (~0.8 s)
SELECT_HZ = (300.0, 4000.0)
SELECT_STRIDE = 3


def spot_statistics(rirs: list[F64]) -> Spot:
    """h and Ψ from one or more measured response sets (several = a region around the spot,
    pooled): the device's own `spot_from_responses`, under the prototype's name."""
    return spot_from_responses("spot", rirs)


def save(path: Path, spots: list[Spot], positions_m: F64) -> None:
    """The calibration file (.npz): per spot h, Ψ, arrivals; the mic layout it was made on."""
    arrays: dict[str, npt.NDArray[np.generic]] = {"positions_m": positions_m}
    for i, s in enumerate(spots):
        arrays |= {f"h{i}": s.h, f"psi{i}": s.psi, f"arrivals{i}": s.arrivals_s}
    np.savez(path, **arrays)  # type: ignore[arg-type]


def load(path: Path) -> tuple[list[Spot], F64]:
    with np.load(path) as data:
        count = sum(1 for k in data.files if k.startswith("h"))
        spots = [
            Spot(f"spot-{i}", data[f"h{i}"], data[f"psi{i}"], data[f"arrivals{i}"])
            for i in range(count)
        ]
        return spots, np.asarray(data["positions_m"], np.float64)


class CalibratedBeam(StftBank):
    """The calibrated spots' beam, streaming and chunk-invariant (state changes per batch)."""

    def __init__(
        self, spots: list[Spot], design: str, batch: int = BATCH,
        forced: list[int] | None = None, select: str = "likelihood",
    ) -> None:  # fmt: skip
        if design not in DESIGNS:
            raise ValueError(f"design must be one of {DESIGNS}, got {design!r}")
        m = spots[0].h.shape[1]
        super().__init__(m, RATE, batch)
        self.design = design
        self.h = np.stack([s.h for s in spots])  # (K, F, M)
        self.psi = np.stack([s.psi for s in spots])  # (K, F, M, M)
        self.rev = self.psi - self.h[..., :, None] * self.h[..., None, :].conj()
        band = (self.freqs >= SELECT_HZ[0]) & (self.freqs <= SELECT_HZ[1])
        self.gate = SpeechGate(band)
        self._band = np.flatnonzero(band)[::SELECT_STRIDE]  # selection looks at every 3rd bin
        self._select_by = select
        self._free = np.stack([_free_field(s.arrivals_s, self.freqs[self._band]) for s in spots])
        self._eye = np.eye(m)
        self.spot = 0
        self._forced = forced  # the spot per batch, given (the evaluation's oracle pick)
        self.choices: list[int] = []  # the spot used for each batch (for the evaluation)
        self._cov: C128 | None = None
        self._phi = np.zeros((len(spots), self.freqs.size))  # direct-speech power per spot
        self._hops = 0
        self._mvdr: C128 = self.h / m  # (K, F, M): delay-and-sum-like until noise is seen
        self.weights: C128 = self.h[0] / m

    def _filter(self, spectra: C128) -> C128:
        drive = spectra[0]  # (M, B, F)
        speech, noise = self.gate.update(drive)
        count = int(noise.sum())
        if count:
            xf = np.ascontiguousarray(drive.transpose(2, 0, 1)) * noise
            block = (xf @ xf.conj().transpose(0, 2, 1)) / count
            keep = NOISE_MEMORY**count
            self._cov = block if self._cov is None else keep * self._cov + (1 - keep) * block
        before, self._hops = self._hops, self._hops + drive.shape[1]
        solve = (
            self._cov is not None and before // SOLVE_EVERY_HOPS != self._hops // SOLVE_EVERY_HOPS
        )
        if solve and self.design == "mvdr":
            self._solve_mvdr()
        spot = self.spot
        if self._forced is not None:
            self.spot = self._forced[min(len(self.choices), len(self._forced) - 1)]
        elif speech.any():
            self._select(drive[:, speech])
        if speech.any():
            self._track_speech(drive[:, speech])
        if self._cov is not None and (solve or spot != self.spot):
            self.weights = self._weights()
        self.choices.append(self.spot)
        return apply_weights(spectra, self.weights)

    def _loaded(self) -> C128:
        assert self._cov is not None
        power = np.trace(self._cov, axis1=1, axis2=2).real / self.channels
        return np.asarray(self._cov + (LOADING * power + 1e-20)[:, None, None] * self._eye)

    def _solve_mvdr(self) -> None:
        r = self._loaded()
        z = np.linalg.solve(r[None], self.h[..., None])[..., 0]  # (K, F, M)
        self._mvdr = z / np.einsum("kfm,kfm->kf", self.h.conj(), z)[..., None]

    def _select(self, x: C128) -> None:
        """The spot under whose model (φΨ_k + R, φ fitted to the frames' power) these speech
        frames are most likely (Gaussian log-likelihood over the speech band); a switch must
        win by `SWITCH_NATS`. Why not simpler scores: each spot's beam output SNR picked at
        chance (a beam towards the wrong spot keeps too much of a reverberant talker below
        ~1 kHz), and SRP-PHAT at the spots' directions ("srp") lost 1-4 dB to wrong picks
        once the talkers moved 10 cm (one room: 70 % right against 100 %)."""
        xb = x[:, :, self._band]  # (M, S, Fb)
        if self._select_by == "srp":  # SRP-PHAT at the spots' measured directions
            phat = xb / np.maximum(np.abs(xb), 1e-20)
            srp = np.abs(np.einsum("kfm,msf->ksf", self._free.conj(), phat)) ** 2
            power = np.sum(srp, axis=(1, 2))
            best = int(np.argmax(power))
            if best != self.spot and power[best] > SWITCH_SRP * power[self.spot]:
                self.spot = best
            return
        if self._cov is None:
            return
        rx = np.einsum("msf,nsf->fmn", xb, xb.conj()) / x.shape[1]
        rn = self._loaded()[self._band]
        excess = np.trace(rx, axis1=1, axis2=2).real - np.trace(rn, axis1=1, axis2=2).real
        score = np.empty(len(self.h))
        for k, psi in enumerate(self.psi[:, self._band]):
            phi = np.maximum(excess, 1e-12) / np.trace(psi, axis1=1, axis2=2).real
            model = phi[:, None, None] * psi + rn
            _, logdet = np.linalg.slogdet(model)
            fit = np.trace(np.linalg.solve(model, rx), axis1=1, axis2=2).real
            score[k] = -float(np.sum(logdet + fit)) * x.shape[1]
        best = int(np.argmax(score))
        if best != self.spot and score[best] > score[self.spot] + SWITCH_NATS:
            self.spot = best

    def _track_speech(self, x: C128) -> None:
        """φ: the selected spot's direct-speech power per bin (speech minus noise, per unit
        of the spot's power gain), recursively over speech frames."""
        if self._cov is None:
            return
        power = np.mean(np.abs(x) ** 2, axis=(0, 1))  # per mic, (F,)
        noise = np.trace(self._cov, axis1=1, axis2=2).real / self.channels
        gain = np.trace(self.psi[self.spot], axis1=1, axis2=2).real / self.channels
        phi = np.maximum(power - noise, 0.0) / np.maximum(gain, 1e-30)
        keep = SPEECH_MEMORY ** x.shape[1]
        old = self._phi[self.spot]
        self._phi[self.spot] = phi if not old.any() else keep * old + (1 - keep) * phi

    def _weights(self) -> C128:
        k = self.spot
        if self.design == "mvdr":
            return np.asarray(self._mvdr[k])
        if not self._phi[k].any():
            self._solve_mvdr()
            return np.asarray(self._mvdr[k])
        phi = self._phi[k][:, None, None]
        if self.design == "mvdr-rev":
            r = self._loaded() + phi * self.rev[k]
            z = np.linalg.solve(r, self.h[k][..., None])[..., 0]
            return np.asarray(z / np.einsum("fm,fm->f", self.h[k].conj(), z)[:, None])
        r = self._loaded() + phi * self.psi[k]
        return np.asarray(np.linalg.solve(r, (phi[..., 0] * self.h[k])[..., None])[..., 0])
