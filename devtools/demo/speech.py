"""The demo's "patient encounter": real speech made at run time with espeak-ng.

Silero (the default VAD) does not take tones for speech, so the demo needs a voice. Nothing
is downloaded and no audio ships with the package: espeak-ng speaks a short scripted exam-room
conversation (two voices, invented content, no patient data), which is resampled to 16 kHz
mono PCM16 and cached in the work directory, keyed by the script, the voices and the espeak-ng
version.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

RATE = 16000
GAP_S = 0.6  # silence between turns, as in a conversation
ESPEAK_WPM = 165

# (voice, sentence): a clinician and a patient, about 30 s together.
SCRIPT: tuple[tuple[str, str], ...] = (
    ("en-us+m3", "Good morning. I am Doctor Rivera. What brings you in today?"),
    ("en-us+f3", "I have had a dry cough for about two weeks, and it is worse at night."),
    ("en-us+m3", "Any fever, chills, or shortness of breath?"),
    ("en-us+f3", "A low fever last weekend, but no trouble breathing."),
    ("en-us+m3", "Are you taking any medicines at the moment?"),
    ("en-us+f3", "Only a vitamin D tablet in the morning, and some honey tea."),
    ("en-us+m3", "Let me listen to your chest. Take a deep breath in, and out."),
    ("en-us+m3", "Your lungs sound clear. This looks like a viral cough that is settling."),
    ("en-us+f3", "That is good to hear. Is there anything I should do?"),
    ("en-us+m3", "Rest, fluids, and come back if it lasts another two weeks."),
)


class SpeechError(RuntimeError):
    """espeak-ng is missing or failed."""


def _espeak() -> str:
    path = shutil.which("espeak-ng")
    if path is None:
        raise SpeechError("espeak-ng is not installed (run `make apt`)")
    return path


def _cache_key(script: tuple[tuple[str, str], ...], min_seconds: float) -> str:
    version = subprocess.run(
        [_espeak(), "--version"], capture_output=True, text=True, check=False
    ).stdout.strip()
    text = repr((script, ESPEAK_WPM, GAP_S, RATE, min_seconds, version))
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def _say(voice: str, sentence: str, folder: Path) -> np.ndarray:
    """One sentence as float samples at 16 kHz."""
    import soundfile
    import soxr

    out = folder / "say.wav"
    result = subprocess.run(
        [_espeak(), "-v", voice, "-s", str(ESPEAK_WPM), "-w", str(out), sentence],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0 or not out.exists():
        raise SpeechError(f"espeak-ng failed: {result.stderr.strip() or result.returncode}")
    samples, rate = soundfile.read(str(out), dtype="float64", always_2d=True)
    mono = samples.mean(axis=1)
    resampled: np.ndarray = soxr.resample(mono, rate, RATE)
    return resampled


def speech_wav(work_dir: Path, min_seconds: float = 0.0) -> Path:
    """The conversation as a 16 kHz mono PCM16 WAV under `work_dir` (made once, then cached).

    With `min_seconds`, the conversation repeats until the file is at least that long (the
    benchmarks record for a minute).
    """
    import soundfile

    key = _cache_key(SCRIPT, min_seconds)
    target = work_dir / f"speech-{key}.wav"
    if target.exists():
        return target
    work_dir.mkdir(parents=True, exist_ok=True)
    gap = np.zeros(int(GAP_S * RATE))
    with tempfile.TemporaryDirectory(dir=work_dir) as tmp:
        parts: list[np.ndarray] = [gap]
        for voice, sentence in SCRIPT:
            parts += [_say(voice, sentence, Path(tmp)), gap]
        once = np.concatenate(parts)
        audio = once
        while len(audio) < min_seconds * RATE:
            audio = np.concatenate([audio, once])
        peak = float(np.max(np.abs(audio))) or 1.0
        pcm = np.round(audio / peak * 0.7 * 32767).astype(np.int16)  # -3 dBFS peaks
        partial = Path(tmp) / "speech.wav"
        soundfile.write(str(partial), pcm, RATE, subtype="PCM_16")
        partial.replace(target)  # atomic: a half-written cache file never exists
    return target


def duration_s(path: Path) -> float:
    import soundfile

    info = soundfile.info(str(path))
    return float(info.frames) / float(info.samplerate)
