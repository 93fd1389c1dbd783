"""Test material built at bench time: espeak-ng speech, noises, and frame-level labels."""

from __future__ import annotations

import itertools
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import numpy.typing as npt
import soundfile
import soxr

RATE = 16000
LABEL_HOP = 160  # 10 ms label frames
F32 = npt.NDArray[np.float32]

SENTENCES = [
    "The patient reports three days of intermittent chest pain, worse on exertion.",
    "No shortness of breath, no fever, and no recent travel.",
    "Blood pressure is one hundred forty over ninety, pulse seventy two.",
    "We will order an electrocardiogram and a troponin level today.",
    "Continue the current medication and return in one week for review.",
    "Any allergies to penicillin or other antibiotics that you know of?",
    "The pain started after lunch and lasted about twenty minutes.",
    "Please take a deep breath in, and now breathe out slowly.",
    "Your results from last month look stable compared with the previous visit.",
    "I would like to check your blood sugar and kidney function as well.",
]
VOICES = ["en-us", "en-gb", "en-us+f3", "en-gb-scotland", "en+m3", "en-us+f5"]


def speak(text: str, voice: str, speed: int = 160) -> F32:
    """espeak-ng speech resampled to 16 kHz float32 (peak-normalised to -6 dBFS)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "s.wav"
        subprocess.run(
            ["espeak-ng", "-v", voice, "-s", str(speed), "-w", str(path), text],
            check=True,
            capture_output=True,
        )
        audio, rate = soundfile.read(path, dtype="float32")
    audio = soxr.resample(audio, rate, RATE).astype(np.float32)
    return (audio * (0.5 / max(1e-6, float(np.max(np.abs(audio)))))).astype(np.float32)


def labels_of(clean: F32) -> npt.NDArray[np.bool_]:
    """Speech per 10 ms: energy within 40 dB of the loudest frame, gaps < 100 ms bridged."""
    n = clean.size // LABEL_HOP
    frames = clean[: n * LABEL_HOP].reshape(n, LABEL_HOP).astype(np.float64)
    energy = 10 * np.log10(np.mean(frames**2, axis=1) + 1e-12)
    speech = energy > energy.max() - 40
    idx = np.flatnonzero(speech)
    for a, b in itertools.pairwise(idx):
        if 1 < b - a <= 10:
            speech[a:b] = True
    return speech


def conversation(seconds: float, seed: int) -> tuple[F32, npt.NDArray[np.bool_]]:
    """Utterances by several voices separated by 0.3-2.5 s pauses, with labels."""
    rng = np.random.default_rng(seed)
    parts: list[F32] = [np.zeros(int(rng.uniform(0.5, 1.5) * RATE), np.float32)]
    total = parts[0].size
    while total < seconds * RATE:
        voice = VOICES[int(rng.integers(len(VOICES)))]
        text = SENTENCES[int(rng.integers(len(SENTENCES)))]
        level = float(rng.uniform(0.3, 1.0))  # near and far talkers
        parts.append(speak(text, voice, speed=int(rng.integers(140, 190))) * level)
        parts.append(np.zeros(int(rng.uniform(0.5, 4.0) * RATE), np.float32))
        total += parts[-1].size + parts[-2].size
    audio = np.concatenate(parts)[: int(seconds * RATE)]
    return audio, labels_of(audio)


def white(n: int, rng: np.random.Generator) -> F32:
    return rng.standard_normal(n).astype(np.float32)


def pink(n: int, rng: np.random.Generator) -> F32:
    spectrum = np.fft.rfft(rng.standard_normal(n))
    freqs = np.fft.rfftfreq(n, 1 / RATE)
    spectrum[1:] /= np.sqrt(freqs[1:])
    spectrum[0] = 0
    return np.fft.irfft(spectrum, n).astype(np.float32)


def babble(n: int, rng: np.random.Generator, talkers: int = 6) -> F32:
    """Several voices talking at once, each looped and offset: a waiting-room murmur."""
    out = np.zeros(n, np.float32)
    for i in range(talkers):
        text = " ".join(SENTENCES[(i * 3 + k) % len(SENTENCES)] for k in range(3))
        voice = speak(text, VOICES[i % len(VOICES)], speed=170)
        reps = np.tile(voice, n // voice.size + 2)
        start = int(rng.integers(voice.size))
        out += reps[start : start + n]
    return out


def mix_at_snr(speech: F32, labels: npt.NDArray[np.bool_], noise: F32, snr_db: float) -> F32:
    """Noise scaled so active-speech power over noise power is `snr_db`."""
    active = np.repeat(labels, LABEL_HOP)[: speech.size]
    speech_power = float(np.mean(speech[: active.size][active].astype(np.float64) ** 2))
    noise_power = float(np.mean(noise.astype(np.float64) ** 2))
    gain = np.sqrt(speech_power / (noise_power * 10 ** (snr_db / 10)))
    mixed = speech + noise[: speech.size] * np.float32(gain)
    peak = float(np.max(np.abs(mixed)))
    return (mixed * (0.9 / peak) if peak > 0.9 else mixed).astype(np.float32)
