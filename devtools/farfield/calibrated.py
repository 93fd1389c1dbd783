"""Prototype (issue #23), not a device candidate: beams calibrated at the room's talker spots.

The oracle ceilings show that a fixed per-bin filter per talker clears the +6 dB goal when
it is fitted to the right answer, and that what a blind beam lacks is the acoustic path from
each talker's spot to the mics (the free-field model with exact positions and the true noise
covariance stays near +3 dB). A wall-mounted device in an exam room has few talker spots
(the clinician's chair, the exam table), so the path could be measured once at installation:
a known signal played at each spot gives, per bin, the filter that best maps the mics onto
that signal's direct sound. Live, the DOA tracker picks the spot, and the filter is applied
as the beams apply their weights (one M-tap product per bin and hop: cheaper than MVDR).

This module measures how far that carries when people do not stand exactly where the
calibration was made: filters fitted on the first half of scenes with the talkers at the
calibration spot (or at it and at four spots 15 cm around it, "region"), scored on the second
half of a scene with both talkers moved by `d` in a direction not used for fitting. Two forms:

- `mwf`: the per-talker least-squares filter itself (noise statistics of calibration time);
- `h-mvdr`: MVDR with the calibrated steering h = E[X·D*] / E[|D|²] (the part of the room's
  transfer function coherent with the direct sound) and the live noise covariance from the
  scene's noise-only frames (≥ 400 ms from any speech), as the device would estimate it.

Run: `python -m benchmarks.bench_farfield --calibration` (30 s scenes, a few minutes).
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import numpy.typing as npt

from benchmarks import _audio
from devtools.farfield import candidates, geometry, metrics, oracle, scene
from edge_recorder.audio.array.stft import HOP

F32 = npt.NDArray[np.float32]
C128 = npt.NDArray[np.complex128]
REGION_M = 0.15  # the region calibration's four extra spots, this far around the spot
MOVES_M = (0.0, 0.1, 0.2, 0.3)
QUIET_FRAMES = 25  # hops (400 ms) from any speech label for a frame to count as noise-only
LOADING = 1e-3


def _shifted(talker: geometry.Talker, d: float, angle: float) -> geometry.Talker:
    x, y, _ = talker.position()
    x, y = x + d * math.cos(angle), y + d * math.sin(angle)
    dx, dy = x - geometry.DEVICE_M[0], y - geometry.DEVICE_M[1]
    azimuth = math.degrees(math.atan2(dx, dy))
    return replace(talker, azimuth_deg=azimuth, distance_m=math.hypot(dx, dy))


def moved(spec: scene.SceneSpec, d: float, angle: float) -> scene.Scene:
    """The spec's scene with both talkers moved `d` m horizontally (the patient 1 rad
    further round, so the two do not move alike); same speech and noise."""
    if d == 0.0:
        return scene.load(spec)
    clinician, patient = geometry.place_talkers(spec.seed)
    return scene.build(spec, (_shifted(clinician, d, angle), _shifted(patient, d, angle + 1.0)))


class _Parts:
    """A scene's STFTs at one SNR: mics, reference, each frame's talker, first-half mask."""

    def __init__(self, scn: scene.Scene, snr_db: float) -> None:
        self.capture = scene.mix(scn, snr_db)
        self.x = oracle.stft(self.capture.T.astype(np.float64))  # (M, T, F)
        self.d = oracle.stft(scn.reference.astype(np.float64))  # (T, F)
        t = self.d.shape[0]
        self.who = oracle.talker_frames(scn.dry, t)
        self.first = np.arange(t) < t // 2
        label = np.minimum(np.arange(t) * HOP // _audio.LABEL_HOP, scn.labels.size - 1)
        speech = np.convolve(scn.labels[label], np.ones(2 * QUIET_FRAMES + 1), "same") > 0
        self.quiet = ~speech


def _fit(parts: list[_Parts]) -> tuple[dict[int, C128], dict[int, C128]]:
    """Per talker: the LS filter (F, M) and the calibrated steering h (F, M), first halves."""
    filters, steering = {}, {}
    for k in (0, 1):
        xs = [p.x[:, (p.who == k) & p.first] for p in parts]
        ds = [p.d[(p.who == k) & p.first] for p in parts]
        x, d = np.concatenate(xs, axis=1), np.concatenate(ds)
        filters[k] = oracle.solve(x.transpose(1, 2, 0), d)
        steering[k] = np.einsum("mtf,tf->fm", x, d.conj()) / np.sum(np.abs(d) ** 2, 0)[:, None]
    return filters, steering


def _apply(parts: _Parts, filters: dict[int, C128], steering: dict[int, C128]) -> list[F32]:
    m = parts.x.shape[0]
    noise = parts.x[:, parts.quiet].transpose(2, 0, 1)  # (F, M, Tq)
    cov = noise @ noise.conj().transpose(0, 2, 1) / max(1, noise.shape[2])
    cov = cov + (LOADING * np.real(np.trace(cov, axis1=1, axis2=2)) / m + 1e-30)[
        :, None, None
    ] * np.eye(m)
    mwf = np.zeros(parts.d.shape, np.complex128)
    beam = np.zeros(parts.d.shape, np.complex128)
    for k in (0, 1):
        frames = parts.who == k
        mwf[frames] = np.einsum("mtf,fm->tf", parts.x[:, frames], filters[k])
        h = steering[k]
        z = np.linalg.solve(cov, h[:, :, None])[:, :, 0]
        w = z / np.einsum("fm,fm->f", h.conj(), z)[:, None]
        beam[frames] = np.einsum("mtf,fm->tf", parts.x[:, frames], w.conj())
    n = parts.capture.shape[0]
    return [oracle.istft(mwf, n), oracle.istft(beam, n)]


def _second_half(reference: F32, output: F32) -> float:
    half = reference.size // 2
    ref, est = reference[half:], output[half:]
    return metrics.si_sdr(*metrics.aligned(ref, est, metrics.best_lag(ref, est)))


def robustness(
    profile: str, rt60_s: float, snr_db: float, seconds: float, best: str
) -> list[dict[str, float]]:
    """SI-SDR gains over the channel average (second halves) for each move: the device's
    `best` kind, and the spot- and region-calibrated filters in both forms."""
    spec = scene.SceneSpec(profile, rt60_s, seconds, 1)
    spot = _Parts(moved(spec, 0.0, 0.0), snr_db)
    around = [moved(spec, REGION_M, q * math.pi / 2) for q in range(4)]
    fitted = {
        "spot": _fit([spot]),
        "region": _fit([spot, *(_Parts(s, snr_db) for s in around)]),
    }
    rows = []
    for d in MOVES_M:
        test = moved(spec, d, math.pi / 4)
        parts = spot if d == 0.0 else _Parts(test, snr_db)
        ref = test.reference
        average = _second_half(ref, np.asarray(parts.capture.mean(axis=1), np.float32))
        device = candidates.array_module()[0]
        row: dict[str, float] = {"moved cm": round(d * 100)}
        if device is not None:
            processor = device.make_array_processor(best, test.positions_m, scene.RATE)
            out, _ = candidates.run(processor, parts.capture)
            lag = processor.delay_samples
            out = np.concatenate([out[lag:], np.zeros(lag, np.float32)])
            row[f"device {best}"] = round(_second_half(ref, out) - average, 2)
        for name, (filters, steering) in fitted.items():
            mwf, beam = _apply(parts, filters, steering)
            row[f"{name} mwf"] = round(_second_half(ref, mwf) - average, 2)
            row[f"{name} h-mvdr"] = round(_second_half(ref, beam) - average, 2)
        rows.append(row)
    return rows
