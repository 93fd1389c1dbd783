"""A raw take of the array's microphones for the technician's commands (`calibrate-array`,
`array-check`): captured from the configured source exactly as `record` opens it, or read
from a WAV made elsewhere, both bounded, and brought to the pipeline's 16 kHz. No DSP and no
beam: these commands run the array processors on the take themselves.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from edge_recorder.config.model import Config

    F32 = npt.NDArray[np.float32]
    F64 = npt.NDArray[np.float64]

RATE = 16000
MAX_WAV_CHANNELS = 32
USAGE, FAILED = 2, 1


class Refused(Exception):
    """The command cannot go on; the message says what to do, `code` is the exit status."""

    def __init__(self, message: str, code: int = FAILED) -> None:
        super().__init__(message)
        self.code = code


def dispatch(
    command: str, action: str, actions: Mapping[str, Callable[[argparse.Namespace], int]],
    args: argparse.Namespace,
) -> int:  # fmt: skip
    """Run `action`; a refusal becomes its message on stderr and its exit status."""
    try:
        return actions[action](args)
    except Refused as exc:
        print(f"edge-recorder {command} {action}: {exc}", file=sys.stderr)
        return exc.code


def write_signal(path: Path, signal: F64, peak_dbfs: float) -> None:
    """`signal` scaled to `peak_dbfs` as the 16 kHz mono PCM16 WAV a loudspeaker plays."""
    import numpy as np
    import soundfile

    scaled = signal * (10 ** (peak_dbfs / 20) / float(np.max(np.abs(signal))))
    try:
        soundfile.write(path, scaled, RATE, subtype="PCM_16", format="WAV")
    except (OSError, RuntimeError) as exc:  # soundfile raises its own error for a bad path
        raise Refused(f"cannot write {path}: {exc}") from None


def bounded(name: str, value: float, bounds: tuple[float, float]) -> None:
    if not bounds[0] <= value <= bounds[1]:
        raise Refused(f"{name} must be {bounds[0]:g}-{bounds[1]:g} s, not {value:g}", USAGE)


def load_config(args: argparse.Namespace) -> Config:
    from edge_recorder.commands.record import load_optional_config

    return load_optional_config(args)


def mic_positions(config: Config, command: str) -> F64:
    """The configured mics in metres, or exit 78: these commands need the array's geometry."""
    from edge_recorder.audio.array.stage import mic_positions_m
    from edge_recorder.config.loader import EX_CONFIG, ConfigError, print_config_error

    positions = mic_positions_m(config.audio)
    if positions.shape[0] < 2:
        print_config_error(
            ConfigError(
                [
                    f"audio.mic_positions_mm: {command} needs the geometry of at least "
                    f"2 microphones (it lists {positions.shape[0]}); set audio.profile"
                ]
            )
        )
        raise SystemExit(EX_CONFIG)
    return positions


def read_wav(path: Path, mics: int | None, seconds: tuple[float, float]) -> tuple[F32, int]:
    """The WAV's first `mics` channels (None: all of them) as (frames, channels) float32 and
    its rate, bounded, read a second at a time (a 32-channel file is never held whole)."""
    import numpy as np
    import soundfile

    try:
        info = soundfile.info(str(path))
    except Exception as exc:  # soundfile raises its own error type for unreadable files
        raise Refused(f"cannot read {path}: {exc}") from None
    if mics is None:
        mics = info.channels
    if not mics <= info.channels <= MAX_WAV_CHANNELS:
        raise Refused(
            f"{path} has {info.channels} channel(s); the array has {mics} mics, which must be "
            f"its first {mics} channels (at most {MAX_WAV_CHANNELS})"
        )
    if not 8000 <= info.samplerate <= 192000:
        raise Refused(f"{path}: rate {info.samplerate} Hz is not 8-192 kHz")
    length = info.frames / info.samplerate
    if not seconds[0] <= length <= seconds[1]:
        raise Refused(f"{path} is {length:.1f} s long: {seconds[0]:g}-{seconds[1]:g} s")
    parts = []
    try:
        with soundfile.SoundFile(str(path)) as wav:
            limit = round(seconds[1] * wav.samplerate)
            for block in wav.blocks(blocksize=wav.samplerate, dtype="float32", always_2d=True):
                parts.append(np.ascontiguousarray(block[:, :mics]))
                if sum(p.shape[0] for p in parts) >= limit:
                    break
    except (OSError, RuntimeError) as exc:  # soundfile's own error for a damaged file
        raise Refused(f"cannot read {path}: {exc}") from None
    if not parts:
        raise Refused(f"{path} holds no audio")
    return np.concatenate(parts)[:limit], int(info.samplerate)


def capture(
    config: Config,
    device: str | None,
    seconds: float,
    mics: int,
    prompt: str,
    to: TextIO | None = None,
) -> tuple[F32, int, str]:
    """`seconds` of the configured source's raw mic channels (frames, mics), as `record`
    opens it; `prompt` tells the technician what to do once it runs (on `to`, default
    stdout: stderr when stdout carries JSON)."""
    import time

    import numpy as np

    from edge_recorder.audio.frames import DeviceLost, EndOfStream, Frames
    from edge_recorder.capture.registry import open_source

    audio = config.audio.model_copy(update={"device": device} if device else {})
    where = audio.device if audio.source == "alsa" else f"{audio.source} source"
    try:
        source = open_source(audio)
    except (ValueError, OSError) as exc:
        raise Refused(f"cannot open the source: {exc}") from None
    fmt = source.format
    if fmt.channels < mics:
        raise Refused(f"{where} delivers {fmt.channels} channel(s) for {mics} mics")
    wanted = round(seconds * fmt.rate)
    blocks: list[npt.NDArray[np.float32]] = []
    got, problem = 0, "no audio arrived"
    print(f"recording {seconds:g} s from {where}: {prompt}", file=to or sys.stdout, flush=True)
    deadline = time.monotonic() + seconds + 10.0
    source.start()
    try:
        while got < wanted and time.monotonic() < deadline:
            item = source.read(timeout=0.5)
            if isinstance(item, Frames):
                block = item.as_float32()[: wanted - got, :mics]
                blocks.append(block)
                got += block.shape[0]
            elif isinstance(item, DeviceLost):  # busy, missing: its message says what to do
                problem = item.message
                break
            elif isinstance(item, EndOfStream):
                break
    finally:
        source.stop()
    if got < wanted:
        raise Refused(f"only {got / fmt.rate:.2f} s recorded from {where}: {problem}")
    return np.concatenate(blocks), fmt.rate, where


def to_16k(channels: F32, rate: int) -> F64:
    """(frames, M) at `rate` → (M, N) float64 at 16 kHz, soxr HQ like the pipeline."""
    import numpy as np
    import soxr

    if rate != RATE:
        channels = soxr.resample(channels, rate, RATE, quality="HQ")
    return np.ascontiguousarray(np.asarray(channels, np.float64).T)
