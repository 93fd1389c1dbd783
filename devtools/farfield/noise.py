"""Fan and HVAC noise: a diffuse field over the array plus the fan's own sound at a vent.

Diffuse noise is modelled as a spherically isotropic field (Habets & Gannot, "Generating
sensor signals in isotropic noise fields", JASA 2007): per frequency the channels get the
coherence sin(kd)/(kd) of an ideal diffuse field, by mixing independent Gaussian spectra with a
square root of that coherence matrix. It is what a room full of reflections of a broadband
source looks like to a small array: nearly coherent at low frequencies (the array cannot
separate it there) and incoherent above c/2d. Simulating dozens of uncorrelated ceiling sources
through the image method would approximate the same field at many times the cost.

The spectrum is HVAC-like: pink, rolled off above ~1 kHz, nothing below 30 Hz.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]
SPEED_OF_SOUND = 343.0
_ROLL_OFF_HZ = 1000.0
_HIGH_PASS_HZ = 30.0


def hvac_shape(freqs_hz: npt.NDArray[np.floating[Any]]) -> F64:
    """Amplitude spectrum: pink (1/√f), one-pole roll-off above 1 kHz, nothing below 30 Hz."""
    f = np.maximum(freqs_hz, 1.0)
    shape = 1.0 / np.sqrt(f) / np.sqrt(1.0 + (f / _ROLL_OFF_HZ) ** 2)
    return np.where(freqs_hz >= _HIGH_PASS_HZ, shape, 0.0).astype(np.float64)


def diffuse(positions_m: F64, samples: int, rate: int, rng: np.random.Generator) -> F32:
    """(M, samples) spherically isotropic HVAC noise at `positions_m` (any frame: only the
    distances matter), unit power at channel 0."""
    m = positions_m.shape[0]
    freqs = np.fft.rfftfreq(samples, 1.0 / rate)
    distance = np.linalg.norm(positions_m[:, None, :] - positions_m[None, :, :], axis=-1)
    spectra = np.empty((m, freqs.size), np.complex128)
    step = 8192  # bins per batch of eigendecompositions: bounded memory on long scenes
    for start in range(0, freqs.size, step):
        f = freqs[start : start + step]
        # np.sinc(x) = sin(πx)/(πx), so x = 2fd/c gives sin(kd)/(kd) with k = 2πf/c.
        coherence = np.sinc(2.0 * f[:, None, None] * distance[None] / SPEED_OF_SOUND)
        values, vectors = np.linalg.eigh(coherence)
        root = vectors * np.sqrt(np.maximum(values, 0.0))[:, None, :]  # root @ root.T = coherence
        z = rng.standard_normal((f.size, m)) + 1j * rng.standard_normal((f.size, m))
        spectra[:, start : start + step] = np.einsum("fij,fj->if", root, z)
    noise = np.fft.irfft(spectra * hvac_shape(freqs), samples, axis=1)
    noise /= np.sqrt(np.mean(noise[0] ** 2))
    return noise.astype(np.float32)


def fan(samples: int, rate: int, rng: np.random.Generator) -> F32:
    """A vent fan, mono: HVAC-shaped broadband noise plus its blade-pass hum (a ~95 Hz tone and
    harmonics, slowly wandering in level), unit power. The hum is what makes it a point source
    worth steering away from rather than more diffuse noise."""
    freqs = np.fft.rfftfreq(samples, 1.0 / rate)
    spectrum = rng.standard_normal(freqs.size) + 1j * rng.standard_normal(freqs.size)
    broadband = np.fft.irfft(spectrum * hvac_shape(freqs), samples)
    broadband /= np.sqrt(np.mean(broadband**2))
    t = np.arange(samples) / rate
    blade = float(rng.uniform(85.0, 105.0))
    hum = np.zeros(samples, np.float64)
    for h in (1, 2, 3, 4):
        hum += np.sin(2 * np.pi * blade * h * t + rng.uniform(0, 2 * np.pi)) / h
    wander = 1.0 + 0.2 * np.sin(2 * np.pi * 0.3 * t)
    out = broadband + 0.5 * hum * wander
    scaled: F32 = (out / np.sqrt(np.mean(out**2))).astype(np.float32)
    return scaled
