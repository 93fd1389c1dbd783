"""Pure rules for Corti uploads: WAV wrapping and splitting a recording into upload parts.

Corti takes whole audio files (`POST /interactions/{id}/recordings/`), each within 150 MB and
120 min [doc]. The spool holds the encoder's raw output, so a pcm16 recording is wrapped in a
44-byte WAV header per part and split at sample-frame boundaries, and a FLAC recording is cut
at frame boundaries (`flac.py`) with its metadata copied in front of every later part. The plan
depends only on the recording's bytes and the limits, and is persisted before the first part,
so a retry (even after a restart) cuts identical parts.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass

from edge_recorder.uplinks.corti.flac import FlacLayout, cuts

WAV_HEADER_BYTES = 44


def wav_header(data_bytes: int, sample_rate: int, channels: int, bits: int = 16) -> bytes:
    """A canonical PCM WAV header for `data_bytes` of little-endian samples."""
    if data_bytes < 0 or data_bytes > 0xFFFFFFFF - 36:
        raise ValueError("WAV data must be 0..4 GiB")
    block_align = channels * bits // 8
    return b"".join(
        (
            b"RIFF",
            struct.pack("<I", 36 + data_bytes),
            b"WAVE",
            b"fmt ",
            struct.pack("<IHHIIHH", 16, 1, channels, sample_rate, sample_rate * block_align,
                        block_align, bits),
            b"data",
            struct.pack("<I", data_bytes),
        )
    )  # fmt: skip


@dataclass(frozen=True)
class Part:
    """One upload: bytes [start, end) of the spooled recording (1-based `number`)."""

    number: int
    start: int
    end: int

    @property
    def size(self) -> int:
        return self.end - self.start


@dataclass(frozen=True)
class UploadPlan:
    """How a recording of `length` bytes is cut.

    pcm16: every part but the last is `part_bytes` (each gets its own WAV header).
    FLAC: parts end at `cuts` (frame boundaries); parts after the first are prefixed with the
    recording's first `header_bytes` (its metadata), so each is a FLAC file of its own.
    """

    length: int
    part_bytes: int
    cuts: tuple[int, ...] = ()
    header_bytes: int = 0

    @property
    def count(self) -> int:
        if self.cuts:
            return len(self.cuts)
        return math.ceil(self.length / self.part_bytes) if self.length else 0

    def parts(self) -> list[Part]:
        if self.cuts:
            starts = (0, *self.cuts[:-1])
            return [
                Part(n + 1, a, b) for n, (a, b) in enumerate(zip(starts, self.cuts, strict=True))
            ]
        return [
            Part(n + 1, n * self.part_bytes, min((n + 1) * self.part_bytes, self.length))
            for n in range(self.count)
        ]

    def prefix_bytes(self, part: Part) -> int:
        """Bytes of the recording's header copied in front of `part` (FLAC parts 2+)."""
        return self.header_bytes if part.number > 1 else 0

    def encode(self) -> str:
        """The persisted form (kept in uplink state so a retry cuts the same parts)."""
        if self.cuts:
            return f"{self.length}:0:{self.header_bytes}:{','.join(map(str, self.cuts))}"
        return f"{self.length}:{self.part_bytes}"

    @classmethod
    def decode(cls, text: str) -> UploadPlan:
        fields = text.split(":")
        length, part_bytes = int(fields[0]), int(fields[1])
        if len(fields) == 4:
            cuts = tuple(int(c) for c in fields[3].split(","))
            if length < 0 or not cuts or cuts[-1] != length:
                raise ValueError(f"bad upload plan {text!r}")
            return cls(length, 0, cuts, int(fields[2]))
        if length < 0 or part_bytes <= 0:
            raise ValueError(f"bad upload plan {text!r}")
        return cls(length, part_bytes)


def pcm_part_bytes(
    max_bytes: int, max_s: float, sample_rate: int, channels: int, bits: int = 16
) -> int:
    """Audio bytes per part: within both limits (header included), whole sample frames."""
    frame = channels * bits // 8
    by_size = max_bytes - WAV_HEADER_BYTES
    by_time = int(max_s * sample_rate) * frame
    size = min(by_size, by_time) // frame * frame
    if size <= 0:
        raise ValueError("upload limits leave no room for audio")
    return size


def plan_pcm(
    length: int, max_bytes: int, max_s: float, sample_rate: int, channels: int
) -> UploadPlan:
    return UploadPlan(length, pcm_part_bytes(max_bytes, max_s, sample_rate, channels))


def plan_flac(layout: FlacLayout, length: int, max_bytes: int, max_s: float) -> UploadPlan:
    """FLAC parts at frame boundaries within both limits (one part when it fits)."""
    return UploadPlan(length, 0, cuts(layout, length, max_bytes, max_s), layout.header_bytes)


def wav_audio(data: bytes) -> bytes:
    """The `data` chunk of a WAV file (for tests and the emulator): raises on a malformed one."""
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise ValueError("not a RIFF/WAVE file")
    riff_size = struct.unpack_from("<I", data, 4)[0]
    if riff_size != len(data) - 8:
        raise ValueError(f"RIFF size {riff_size} disagrees with the {len(data) - 8} bytes sent")
    pos, fmt_seen = 12, False
    while pos + 8 <= len(data):
        chunk_id, size = data[pos : pos + 4], struct.unpack_from("<I", data, pos + 4)[0]
        body = pos + 8
        if chunk_id == b"fmt ":
            fmt_seen = True
        if chunk_id == b"data":
            if not fmt_seen:
                raise ValueError("WAV data chunk before its fmt chunk")
            if body + size != len(data):
                raise ValueError(f"WAV data chunk says {size} bytes but {len(data) - body} follow")
            return data[body : body + size]
        pos = body + size + (size & 1)
    raise ValueError("WAV file without a data chunk")


def wav_format(data: bytes) -> tuple[int, int, int]:
    """(sample_rate, channels, bits) of a WAV file's fmt chunk."""
    pos = 12
    while pos + 8 <= len(data):
        chunk_id, size = data[pos : pos + 4], struct.unpack_from("<I", data, pos + 4)[0]
        if chunk_id == b"fmt " and size >= 16:
            _, channels, rate, _, _, bits = struct.unpack_from("<HHIIHH", data, pos + 8)
            return rate, channels, bits
        pos += 8 + size + (size & 1)
    raise ValueError("WAV file without a fmt chunk")
