"""Measuring a talker spot: from a recorded loudspeaker sweep to what the calibrated beam uses.

The technician plays `sweep()` from a small loudspeaker where a talker's mouth will be; the
device records it with every mic, with no sync to the player. Then:

- `measure_responses`: regularised spectral division of the recording by the sweep gives
  each mic's impulse response (loudspeaker x room), wherever in the recording the sweep
  started (an unknown start only shifts every response alike). It is cut from 5 ms before
  the strongest arrival; no clear arrival means no sweep was heard, said plainly.
- `_direct_path`: the first ~3 ms around the strongest arrival is the direct sound through
  the loudspeaker; averaged over the mics after undoing their relative delays it is the
  direct sound at the array centre. Dividing by it removes the loudspeaker's and the sweep's
  spectrum: h = G / D is the room only, relative to its direct sound, which is what a
  listener (and the evaluation's reference) wants.
- `spot_from_responses`: h and Ψ = E[x xᴴ] / E[|D|²] per bin of the beamformers' 512-point
  bank (direct sound, early and late reverberation as 32 ms frames see them), computed by
  driving the measured responses with white noise; several response sets (the spot and
  points around it) are pooled, which makes the beam tolerate a talker a few cm off. Bins
  outside the sweep's band get the free-field plane wave of the measured arrival times.

Pure numpy and deterministic (a fixed seed for the excitation): a port of the research
prototype (devtools/farfield/calibration.py), whose evaluation chose these constants.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import numpy.typing as npt

from edge_recorder.audio.array.calibration_file import CalibrationError, Spot, check_name
from edge_recorder.audio.array.stft import HOP, NFFT  # h and Ψ live on the bank's bins

F64 = npt.NDArray[np.float64]
C128 = npt.NDArray[np.complex128]

RATE = 16000
SWEEP_BAND_HZ: tuple[float, float] = (150.0, 7000.0)  # a small loudspeaker's usable band
RESPONSE_S = 0.6  # kept after the direct sound (RT60 ≤ 0.8 s: the rest is noise)
LEAD_S = 0.005  # kept before the strongest arrival
DIRECT_MS = (1.0, 2.5)  # direct-sound window before / after the strongest arrival
EXCITATION_S = 20.0  # white noise driven through the responses for the statistics
TAIL_S = 0.1  # the response's last 100 ms: its noise floor for `sweep_snr_db`
MIN_PEAK_OVER_FLOOR_DB = 20.0  # a heard sweep's responses peak far above this (~50-70 dB)
_REGULARISE = 1e-3  # of the sweep's peak in-band power: the spectral division's floor
_WINDOW = np.sqrt(0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(NFFT) / NFFT))


def sweep(seconds: float = 5.0, rate: int = RATE) -> F64:
    """Exponential sine sweep over SWEEP_BAND_HZ (Farina) with 50 ms fades: what the
    technician plays (2 s already measure as well; 5 s leave margin for a noisy room)."""
    if not 0.5 <= seconds <= 60.0:
        raise ValueError(f"a sweep lasts 0.5-60 s, not {seconds}")
    t = np.arange(int(seconds * rate)) / rate
    f1, f2 = SWEEP_BAND_HZ
    k = seconds / math.log(f2 / f1)
    s = np.sin(2 * np.pi * f1 * k * (np.exp(t / k) - 1.0))
    fade = int(0.05 * rate)
    ramp = np.sin(np.linspace(0, np.pi / 2, fade)) ** 2
    s[:fade] *= ramp
    s[-fade:] *= ramp[::-1]
    return np.asarray(s, np.float64)


def stft(x: npt.NDArray[np.floating[Any]]) -> C128:
    """(..., N) → (..., T, F) on the bank's window and hop, the first frame centred on 0."""
    n = x.shape[-1]
    frames = -(-n // HOP) + 1
    padded = np.zeros((*x.shape[:-1], (frames + 1) * HOP))
    padded[..., HOP : HOP + n] = x
    index = np.arange(frames)[:, None] * HOP + np.arange(NFFT)[None, :]
    spectra: C128 = np.fft.rfft(padded[..., index] * _WINDOW, axis=-1)
    return spectra


def _peak_over_floor_db(energy: F64, floor: float) -> float:
    return 10.0 * math.log10(max(float(np.max(energy)), 1e-300) / max(floor, 1e-300))


def measure_responses(recording: F64, played: F64) -> F64:
    """(M, N) 16 kHz recording of `played` (starting anywhere in it) → (M, L) responses, cut
    from 5 ms before the strongest arrival, 0.6 s long. Raises CalibrationError when no sweep
    is in it: the strongest arrival must stand 20 dB above the median of the deconvolution
    (its noise floor), which a heard sweep passes by 30 dB or more and noise never does."""
    rec = np.asarray(recording, np.float64)
    if rec.ndim != 2 or rec.shape[0] < 1 or not np.all(np.isfinite(rec)):
        raise CalibrationError(f"a recording must be (mics, samples) of finite values: {rec.shape}")
    if rec.shape[1] < played.size:
        raise CalibrationError(
            "the recording is shorter than the sweep: record from before the loudspeaker "
            "starts until a second after it stops"
        )
    n = rec.shape[1]
    size = 1 << (n + played.size).bit_length()
    freqs = np.fft.rfftfreq(size, 1.0 / RATE)
    s = np.fft.rfft(played, size)
    inside = (freqs >= SWEEP_BAND_HZ[0]) & (freqs <= SWEEP_BAND_HZ[1])
    eps = _REGULARISE * float(np.max(np.abs(s[inside]) ** 2))
    g = np.fft.rfft(rec, size, axis=1) * (s.conj() / (np.abs(s) ** 2 + eps))
    g[:, ~inside] = 0.0
    full = np.fft.irfft(g, size, axis=1)[:, : n + played.size // 4]
    energy = np.mean(full**2, axis=0)
    if _peak_over_floor_db(energy, float(np.median(energy))) < MIN_PEAK_OVER_FLOOR_DB:
        raise CalibrationError(
            "no sweep heard: is the loudspeaker on, pointed at the device and loud enough, "
            "and was it playing while the device recorded?"
        )
    peak = int(np.argmax(energy))
    start = max(0, peak - int(LEAD_S * RATE))
    out = np.zeros((rec.shape[0], int((LEAD_S + RESPONSE_S) * RATE)))
    part = full[:, start : start + out.shape[1]]
    out[:, : part.shape[1]] = part
    return out


def sweep_snr_db(responses: F64) -> float:
    """The measurement's quality: the direct sound's peak power (mean over the mics) over the
    mean power of the responses' last 100 ms, in dB. That tail is 0.5-0.6 s after the direct
    sound, where a room's reverberation has decayed (RT60 ≤ 0.5 s: by 60 dB), so it is the
    measurement's noise floor, or reverberation in a very live room: a lower bound on the
    SNR. Good measurements read 40 dB or more; below ~25 dB play the sweep louder."""
    r = np.asarray(responses, np.float64)
    energy = np.mean(r**2, axis=0)
    return _peak_over_floor_db(energy, float(np.mean(energy[-int(TAIL_S * RATE) :])))


def _shift(x: F64, samples: F64) -> F64:
    """Each row of (M, L) delayed by its fractional `samples` (FFT phase, zero-padded)."""
    size = 1 << (x.shape[1] * 2).bit_length()
    f = np.fft.rfftfreq(size)
    spectra = np.fft.rfft(x, size, axis=1) * np.exp(-2j * np.pi * f[None] * samples[:, None])
    return np.asarray(np.fft.irfft(spectra, size, axis=1)[:, : x.shape[1]], np.float64)


def direct_path(responses: F64) -> tuple[F64, F64]:
    """The direct sound at the array centre (a response on the responses' time axis) and
    each mic's arrival time relative to the centre (s, the mics' centroid)."""
    m, length = responses.shape
    peak = int(np.argmax(np.sum(responses**2, axis=0)))
    before, after = (int(ms * RATE / 1000) for ms in DIRECT_MS)
    lo, hi = max(0, peak - before), min(length, peak + after)
    taper = np.ones(hi - lo)
    fade = max(1, (hi - lo) // 6)
    taper[:fade] = np.sin(np.linspace(0, np.pi / 2, fade)) ** 2
    taper[-fade:] = taper[:fade][::-1]
    window = np.zeros((m, length))
    window[:, lo:hi] = responses[:, lo:hi] * taper
    up = 16  # relative delays: cross-correlation with mic 0, 16x oversampled
    size = 1 << (2 * length).bit_length()
    spectra = np.fft.rfft(window, size, axis=1)
    xcorr = np.fft.irfft(spectra * spectra[0].conj(), size * up, axis=1)
    span = int(0.002 * RATE * up)
    lags = np.concatenate([np.arange(0, span + 1), np.arange(-span, 0)])
    delays = lags[np.argmax(xcorr[:, lags % (size * up)], axis=1)] / up  # vs mic 0
    relative = delays - float(np.mean(delays))
    centre = np.mean(_shift(window, -relative), axis=0)
    return np.asarray(centre, np.float64), np.asarray(relative / RATE, np.float64)


def free_field(arrivals_s: F64, freqs: F64) -> C128:
    """(F, M) unit plane wave with these arrival times at each mic."""
    return np.asarray(np.exp(-2j * np.pi * np.outer(freqs, arrivals_s)), np.complex128)


def spot_from_responses(name: str, responses: list[F64]) -> Spot:
    """The spot `name` from one or more measured response sets ((M, L) each, same M): several
    are the spot and points around it, pooled into one set of statistics."""
    check_name(name)
    if not responses:
        raise CalibrationError(f"spot {name}: no measurement")
    shapes = {np.shape(r) for r in responses}
    if len(shapes) != 1 or len(next(iter(shapes))) != 2 or next(iter(shapes))[0] < 2:
        raise CalibrationError(f"spot {name}: measurements of different arrays {sorted(shapes)}")
    rng = np.random.default_rng(0)
    e = rng.standard_normal(int(EXCITATION_S * RATE))
    length = responses[0].shape[1]
    size = 1 << (e.size + length).bit_length()
    ef = np.fft.rfft(e, size)
    m, f = responses[0].shape[0], NFFT // 2 + 1
    cross = np.zeros((f, m), np.complex128)
    cov = np.zeros((f, m, m), np.complex128)
    power = np.zeros(f)
    arrivals = []
    for r in responses:
        d, relative = direct_path(np.asarray(r, np.float64))
        arrivals.append(relative)
        x = np.fft.irfft(np.fft.rfft(r, size, axis=1) * ef, size, axis=1)[:, : e.size]
        dd = np.fft.irfft(np.fft.rfft(d, size) * ef, size)[: e.size]
        xs, ds = stft(x), stft(dd)  # (M, T, F), (T, F)
        cross += np.einsum("mtf,tf->fm", xs, ds.conj())
        cov += np.einsum("mtf,ntf->fmn", xs, xs.conj())
        power += np.sum(np.abs(ds) ** 2, axis=0)
    arrivals_s = np.asarray(np.mean(arrivals, axis=0), np.float64)
    freqs = np.arange(f) * RATE / NFFT
    power = np.maximum(power, 1e-30)
    h = cross / power[:, None]
    psi = cov / power[:, None, None]
    out = (freqs < SWEEP_BAND_HZ[0] * 1.1) | (freqs > SWEEP_BAND_HZ[1] * 0.95)
    a = free_field(arrivals_s, freqs[out])
    h[out] = a
    psi[out] = a[:, :, None] * a[:, None, :].conj()
    psi = 0.5 * (psi + psi.conj().transpose(0, 2, 1))  # exactly Hermitian
    return Spot(
        name=name,
        h=np.asarray(h, np.complex128),
        psi=np.asarray(psi, np.complex128),
        arrivals_s=arrivals_s,
    )


__all__ = ["SWEEP_BAND_HZ", "measure_responses", "spot_from_responses", "sweep", "sweep_snr_db"]
