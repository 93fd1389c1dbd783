"""Every capture source by its `audio.source` name: one registry, and the mic probe.

A source is a module of this package implementing `audio.frames.AudioSource` (`alsa`, `wav`,
`synthetic`); adding one means its module, one line in `SOURCES`, and its name in the config's
`audio.source` choices (a test keeps the two equal).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Literal

import numpy as np

from edge_recorder.audio.frames import AudioSource, DeviceLost, Frames
from edge_recorder.capture.alsa import AlsaSource
from edge_recorder.capture.base import CaptureFormatError, validate_capture_format
from edge_recorder.capture.synthetic import SyntheticSource
from edge_recorder.capture.wav import WavSource
from edge_recorder.config.model import AudioConfig, Config
from edge_recorder.support.checks import CheckResult

SourceFactory = Callable[[AudioConfig], AudioSource]


def _wav(audio: AudioConfig) -> AudioSource:
    if audio.wav_path is None:
        raise CaptureFormatError("audio.wav_path is required for audio.source = 'wav'")
    return WavSource(audio.wav_path, speed=audio.speed, period_ms=audio.period_ms)


def _synthetic(audio: AudioConfig) -> AudioSource:
    fmt = validate_capture_format(audio.format, audio.rate, audio.channels)
    return SyntheticSource(fmt, speed=audio.speed, period_ms=audio.period_ms)


SOURCES: dict[str, SourceFactory] = {
    "alsa": AlsaSource.from_config,
    "wav": _wav,
    "synthetic": _synthetic,
}


def open_source(audio: AudioConfig) -> AudioSource:
    """The capture source the config asks for (not started yet).

    Raises CaptureFormatError for a format that cannot be captured, and OSError (or a
    soundfile error) for an unreadable WAV file, before any thread starts.
    """
    return SOURCES[audio.source](audio)


def probe_mic(config: Config) -> list[CheckResult]:
    """`check --probe` row: open the configured mic and capture ~0.5 s, or say why not."""
    audio = config.audio
    if audio.source == "wav":
        return _probe_wav(audio)
    if audio.source != "alsa":
        return [CheckResult("mic", "info", f"source = {audio.source}: no microphone to probe")]
    try:
        source = open_source(audio)
    except CaptureFormatError as exc:
        return [CheckResult("mic", "fail", str(exc))]
    wanted = source.format.rate // 2
    got: list[Frames] = []
    deadline = time.monotonic() + 3.0
    source.start()
    try:
        while sum(f.count for f in got) < wanted and time.monotonic() < deadline:
            item = source.read(timeout=0.2)
            if isinstance(item, DeviceLost):
                return [CheckResult("mic", "fail", item.message)]
            if isinstance(item, Frames):
                got.append(item)
    finally:
        source.stop()
    if not got:
        return [CheckResult("mic", "fail", f"{audio.device} opened but delivered no audio")]
    samples = np.concatenate([f.as_float32() for f in got])[:wanted]  # whole periods: trim
    rms = float(np.sqrt(np.mean(np.square(samples, dtype=np.float64))))
    level = f"{20 * np.log10(rms):.1f} dBFS" if rms > 0 else "digital silence (muted?)"
    status: Literal["ok", "warn"] = "ok" if rms > 0 else "warn"
    return [CheckResult("mic", status, f"{audio.device}: {len(samples)} frames, level {level}")]


def _probe_wav(audio: AudioConfig) -> list[CheckResult]:
    """A WAV "mic": the file's own header decides rate and channels (`audio.rate` does not
    apply), so say what the file holds, or fail for a file the daemon could not play."""
    try:
        source = open_source(audio)
    except Exception as exc:  # missing file, not audio, unsupported subtype (soundfile's own)
        return [CheckResult("mic", "fail", f"wav {audio.wav_path}: {type(exc).__name__}: {exc}")]
    try:
        fmt = source.format
        frames = getattr(source, "total_frames", 0)
    finally:
        source.stop()
    seconds = frames / fmt.rate if fmt.rate else 0.0
    detail = (
        f"source = wav: no microphone to probe; {audio.wav_path}: {fmt.rate} Hz {fmt.channels} ch "
        f"{fmt.sample_format}, {seconds:.1f} s -> 16 kHz mono"
    )
    return [CheckResult("mic", "ok" if frames else "fail", detail)]
