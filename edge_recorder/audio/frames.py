"""The unit of audio handed from a capture source to the pipeline, and source events.

Capture threads do nothing but read; they hand over raw bytes plus where those bytes sit on
the device's sample timeline. `start_frame` counts frames since the source started,
*including* frames lost to overruns or outages, so time stays sample-accurate and a consumer
can see every gap (`lost_before`).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Literal, Protocol

import numpy as np
import numpy.typing as npt

SampleFormat = Literal["S16_LE", "S24_LE", "S32_LE"]

# Bytes per sample as ALSA delivers them (S24_LE is 24 bits in a 4-byte container).
SAMPLE_WIDTH: dict[SampleFormat, int] = {"S16_LE": 2, "S24_LE": 4, "S32_LE": 4}
_FULL_SCALE: dict[SampleFormat, float] = {"S16_LE": 2.0**15, "S24_LE": 2.0**23, "S32_LE": 2.0**31}


@dataclass(frozen=True)
class AudioFormat:
    rate: int
    channels: int
    sample_format: SampleFormat

    @property
    def frame_bytes(self) -> int:
        return SAMPLE_WIDTH[self.sample_format] * self.channels


@dataclass(frozen=True)
class Frames:
    """A block of interleaved frames as captured, positioned on the device timeline."""

    data: bytes
    format: AudioFormat
    start_frame: int
    lost_before: int = 0  # frames lost (overrun, outage) just before this block

    @property
    def count(self) -> int:
        return len(self.data) // self.format.frame_bytes

    @property
    def start_s(self) -> float:
        return self.start_frame / self.format.rate

    def as_float32(self) -> npt.NDArray[np.float32]:
        """Samples as float32 in [-1, 1), shape (frames, channels)."""
        fmt = self.format.sample_format
        if fmt == "S16_LE":
            raw = np.frombuffer(self.data, dtype="<i2")
        else:
            raw = np.frombuffer(self.data, dtype="<i4")
            if fmt == "S24_LE":  # sign-extend the low 24 bits of each 32-bit container
                raw = (raw << 8) >> 8
        scaled = raw.astype(np.float32) / np.float32(_FULL_SCALE[fmt])
        return scaled.reshape(-1, self.format.channels)


def int_samples(data: bytes, fmt: AudioFormat) -> npt.NDArray[np.int32]:
    """Interleaved capture bytes as int32 samples, shape (frames, channels); S24_LE is
    sign-extended from the low 24 bits of its 32-bit container."""
    if fmt.sample_format == "S16_LE":
        raw = np.frombuffer(data, dtype="<i2").astype(np.int32)
    else:
        raw = np.frombuffer(data, dtype="<i4")
        if fmt.sample_format == "S24_LE":
            raw = (raw << 8) >> 8
    return raw.reshape(-1, fmt.channels)


def concat_frames(blocks: list[Frames]) -> Frames:
    """Contiguous blocks of one format as one block: the same bytes on the same timeline."""
    if len(blocks) == 1:
        return blocks[0]
    first = blocks[0]
    for before, after in itertools.pairwise(blocks):
        if after.format != first.format or after.start_frame != before.start_frame + before.count:
            raise ValueError("only contiguous blocks of one format can be joined")
    data = b"".join(block.data for block in blocks)
    return Frames(data, first.format, first.start_frame, first.lost_before)


@dataclass(frozen=True)
class Overrun:
    """Frames were lost before `at_frame`: the device overran (ALSA dropped them), or the
    consumer stalled and the capture queue was full (`cause="consumer"`)."""

    at_frame: int
    lost_frames: int
    cause: Literal["device", "consumer"] = "device"


@dataclass(frozen=True)
class DeviceLost:
    """The capture device went away or could not be opened; capture retries with back-off."""

    device: str
    reason: Literal["missing", "busy", "unplugged", "io-error"]
    message: str


@dataclass(frozen=True)
class DeviceBack:
    """The device is capturing again after `outage_s` seconds without audio."""

    device: str
    outage_s: float


@dataclass(frozen=True)
class EndOfStream:
    """A finite source (a WAV file) has no more audio."""

    at_frame: int


SourceEvent = Overrun | DeviceLost | DeviceBack | EndOfStream


class AudioSource(Protocol):
    """A capture source: ALSA, a paced WAV file, or a generated signal.

    `start()` begins capture on the source's own thread; `read()` returns the next block, an
    event, or None when nothing arrived within `timeout` seconds.
    """

    @property
    def format(self) -> AudioFormat: ...

    def start(self) -> None: ...

    def read(self, timeout: float | None = None) -> Frames | SourceEvent | None: ...

    def stop(self) -> None: ...
