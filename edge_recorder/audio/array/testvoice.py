"""A synthetic test voice: speech-like sound to play in a room, with no speech in it.

`edge-recorder array-check` scores the array's beams against what the loudspeaker played.
That needs a signal the beams treat as they treat a talker (voiced harmonics under vowel
formants, fricative hiss, syllables at ~4 per second, pauses between phrases for the speech
gate and the noise covariance) and that is safe to record in a hospital: it carries no
words, so a take of it holds nothing about anyone. It is made here, deterministically (the
same seed always gives the same samples), so a device needs no speech corpus and nothing is
downloaded. Two alternating pitches (~115 and ~210 Hz) stand for a lower and a higher voice.

Additive synthesis: each voiced syllable is a sum of harmonics of a gliding pitch, each
weighted by the vowel's formant envelope at its frequency (three second-order resonances,
Peterson & Barney's vowel formants), so no IIR filtering runs sample by sample in Python.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

F64 = npt.NDArray[np.float64]

RATE = 16000
PEAK = 0.5  # -6 dBFS: the technician sets the loudness on the loudspeaker
# (F1, F2, F3) in Hz of /a i e o u æ ɝ/ (Peterson & Barney 1952, men's means)
VOWELS = (
    (730.0, 1090.0, 2440.0),
    (270.0, 2290.0, 3010.0),
    (530.0, 1840.0, 2480.0),
    (570.0, 840.0, 2410.0),
    (300.0, 870.0, 2240.0),
    (660.0, 1720.0, 2410.0),
    (490.0, 1350.0, 1690.0),
)
BANDWIDTHS = (80.0, 100.0, 140.0)  # Hz, of F1-F3
HIGHER_FORMANTS = ((3500.0, 200.0), (4500.0, 250.0))  # F4, F5 and their bandwidths, any vowel
FORMANT_WEIGHTS = (1.0, 0.5, 0.22, 0.12, 0.07)  # F1-F5
PITCHES = (115.0, 210.0)  # Hz: the two voices, phrase by phrase
BREATH = 0.3  # the breath noise's RMS against the harmonics'
TOP_HZ = 7000.0  # harmonics and hiss stay below (16 kHz audio)


def synthetic_voice(seconds: float, seed: int = 0) -> F64:
    """`seconds` of the test voice at 16 kHz, peak `PEAK`: phrases of 3-8 syllables (words
    60-160 ms apart), 0.5-1.0 s pauses between phrases, starting and ending in silence."""
    if not 1.0 <= seconds <= 600.0:
        raise ValueError(f"test voice length must be 1-600 s, not {seconds:g}")
    rng = np.random.default_rng(seed)
    n = round(seconds * RATE)
    out = np.zeros(n)
    t = round(0.3 * RATE)
    phrase = 0
    while True:
        pitch = PITCHES[phrase % len(PITCHES)] * rng.uniform(0.92, 1.08)
        for _ in range(int(rng.integers(3, 9))):
            syllable = _syllable(rng, pitch)
            if t + syllable.size > n - round(0.2 * RATE):
                return _normalised(out)
            out[t : t + syllable.size] += syllable
            t += syllable.size + round(rng.uniform(0.06, 0.16) * RATE)
        t += round(rng.uniform(0.5, 1.0) * RATE)
        phrase += 1


def _syllable(rng: np.random.Generator, pitch: float) -> F64:
    """An optional fricative onset, then a voiced vowel with a gliding pitch."""
    parts = []
    if rng.random() < 0.4:
        parts.append(_hiss(rng, round(rng.uniform(0.04, 0.09) * RATE)))
    parts.append(_vowel(rng, pitch, round(rng.uniform(0.12, 0.28) * RATE)))
    return np.concatenate(parts)


def _vowel(rng: np.random.Generator, pitch: float, n: int) -> F64:
    formants = np.array(VOWELS[int(rng.integers(len(VOWELS)))])
    glide = pitch * (1.0 + rng.uniform(-0.12, 0.12) * np.linspace(0.0, 1.0, n))  # Hz per sample
    phase = 2 * np.pi * np.cumsum(glide) / RATE
    harmonics = np.arange(1, int(TOP_HZ // (pitch * 1.15)) + 1)
    freqs = glide[:, None] * harmonics[None]  # (n, K)
    amplitude = _formant_gain(freqs, formants)
    voiced: F64 = (amplitude * np.sin(phase[:, None] * harmonics[None])).sum(axis=1)
    # breath: noise under the same formants, so every bin between the harmonics carries the
    # talker too (pure harmonics left the beams' direction finding to ~20 bins)
    spectrum = np.fft.rfft(rng.standard_normal(n))
    spectrum *= _formant_gain(np.fft.rfftfreq(n, 1.0 / RATE).astype(np.float64), formants)
    breath: F64 = np.fft.irfft(spectrum, n)
    voiced += breath * (BREATH * _rms(voiced) / (_rms(breath) + 1e-12))
    return voiced * _envelope(n, 0.02)


def _hiss(rng: np.random.Generator, n: int) -> F64:
    """Noise between 2.5 and 7 kHz: an s or a sh."""
    spectrum = np.fft.rfft(rng.standard_normal(n))
    freqs = np.fft.rfftfreq(n, 1.0 / RATE)
    spectrum[(freqs < 2500.0) | (freqs > TOP_HZ)] = 0.0
    hiss: F64 = np.fft.irfft(spectrum, n)
    hiss *= 0.3 / (float(np.max(np.abs(hiss))) + 1e-12)
    return hiss * _envelope(n, 0.01)


def _formant_gain(freqs: F64, formants: F64) -> F64:
    """The vowel's envelope at `freqs`: five resonances in parallel (F1-F3 of the vowel, then
    F4 and F5), each weighted so that the long-term spectrum falls as speech's does (~6 dB
    per octave above 1 kHz; a cascade fell twice as fast and starved the bins the beams
    find directions in)."""
    gain = np.zeros_like(freqs)
    centres = [*formants, *(f for f, _ in HIGHER_FORMANTS)]
    widths = [*BANDWIDTHS, *(w for _, w in HIGHER_FORMANTS)]
    for centre, width, weight in zip(centres, widths, FORMANT_WEIGHTS, strict=True):
        gain += weight / np.sqrt(1.0 + ((freqs - centre) / (width / 2)) ** 2)
    return gain


def _envelope(n: int, ramp_s: float) -> F64:
    """Raised-cosine ramps in and out: no clicks at a syllable's edges."""
    ramp = min(n // 2, round(ramp_s * RATE))
    env = np.ones(n)
    rise = 0.5 - 0.5 * np.cos(np.pi * np.arange(ramp) / max(ramp, 1))
    env[:ramp] = rise
    env[n - ramp :] = rise[::-1]
    return env


def _rms(x: F64) -> float:
    return float(np.sqrt(np.mean(x**2)))


def _normalised(x: F64) -> F64:
    peak = float(np.max(np.abs(x)))
    return x * (PEAK / peak) if peak > 0 else x
