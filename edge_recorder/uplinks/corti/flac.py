"""Where a FLAC recording can be cut: its metadata length and every frame's offset (pure).

A FLAC file is `fLaC`, metadata blocks, then frames, each starting with a sync code and a header
protected by CRC-8 (RFC 9639 §9.1). A part cut at a frame boundary and given the recording's own
metadata in front is a valid FLAC file on its own (frame numbers then start above 0, which
decoders accept: it is how a stream joined mid-way looks). A candidate sync code counts as a
frame only when its header parses, its CRC-8 matches and its frame number is the next one, so
audio bytes that happen to look like a sync code are never taken for a boundary.
Fixed-blocksize streams only (what libFLAC/libsndfile write); anything else is not cut.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from edge_recorder.audio.flacinfo import crc8

SCAN_WINDOW = 1024 * 1024


@dataclass(frozen=True)
class FlacLayout:
    header_bytes: int  # `fLaC` + metadata blocks
    sample_rate: int
    block_size: int  # samples per frame (the last frame may hold fewer)
    frames: tuple[int, ...]  # byte offset of every frame, in order


def metadata(data: bytes) -> tuple[int, int, int]:
    """(header bytes, sample rate, max block size) from the start of a FLAC file."""
    if data[:4] != b"fLaC":
        raise ValueError("not a FLAC stream")
    pos, rate, block = 4, 0, 0
    while True:
        if pos + 4 > len(data):
            raise ValueError("FLAC metadata runs past the bytes read")
        kind, size = data[pos] & 0x7F, int.from_bytes(data[pos + 1 : pos + 4], "big")
        if kind == 0:
            info = data[pos + 4 : pos + 4 + size]
            min_block, block = int.from_bytes(info[0:2], "big"), int.from_bytes(info[2:4], "big")
            if min_block != block:
                raise ValueError("variable block size FLAC is not cut")
            rate = int.from_bytes(info[10:13], "big") >> 4
        last = data[pos] & 0x80
        pos += 4 + size
        if last:
            if not rate or not block:
                raise ValueError("FLAC without STREAMINFO")
            return pos, rate, block


def frame_number(data: bytes, pos: int) -> int | None:
    """The frame number of a valid fixed-blocksize frame header at `pos`, else None."""
    head = data[pos : pos + 16]
    if len(head) < 6 or head[0] != 0xFF or head[1] != 0xF8:
        return None
    block_code, rate_code = head[2] >> 4, head[2] & 0x0F
    if block_code == 0 or rate_code == 0x0F or head[3] & 0x01 or (head[3] >> 4) > 10:
        return None
    lead = head[4]
    extra = 0
    while extra < 7 and lead & (0x80 >> extra):
        extra += 1
    if extra == 1 or extra > 6:
        return None
    value = lead & (0x7F >> extra) if extra else lead
    end = 5 + max(extra - 1, 0)
    for byte in head[5:end]:
        if byte & 0xC0 != 0x80:
            return None
        value = (value << 6) | (byte & 0x3F)
    end += {6: 1, 7: 2}.get(block_code, 0) + {12: 1, 13: 2, 14: 2}.get(rate_code, 0)
    if len(head) < end + 1 or crc8(head[:end]) != head[end]:
        return None
    return value


async def scan(length: int, read: Callable[[int, int], Awaitable[bytes]]) -> FlacLayout:
    """Every frame offset of the first `length` bytes, reading `SCAN_WINDOW` at a time."""
    first = await read(0, min(length, SCAN_WINDOW))
    header, rate, block = metadata(first)
    frames: list[int] = []
    base, buf, pos = 0, first, header  # buf holds bytes from absolute offset `base`
    while pos < length:
        if pos + 16 > base + len(buf) and base + len(buf) < length:
            end = base + len(buf)
            buf = buf[pos - base :] + await read(end, min(length, end + SCAN_WINDOW))
            base = pos
        rel = pos - base
        if frame_number(buf, rel) == len(frames):
            frames.append(pos)
            pos += 6  # a frame is longer than its shortest header
            continue
        found = buf.find(b"\xff\xf8", rel + 1)
        if found != -1:
            pos = base + found
        elif base + len(buf) >= length:
            break
        else:
            pos = base + len(buf) - 1  # a sync code may straddle the window's end
    if not frames or frames[0] != header:
        raise ValueError("FLAC frames do not follow the metadata")
    return FlacLayout(header, rate, block, tuple(frames))


def cuts(layout: FlacLayout, length: int, max_bytes: int, max_s: float) -> tuple[int, ...]:
    """Byte offsets where parts end (the last part ends at `length`), each part at most
    `max_bytes` (the copied metadata included) and `max_s` seconds."""
    per_part = int(max_s * layout.sample_rate) // layout.block_size
    if per_part < 1:
        raise ValueError("upload_max_s is shorter than one FLAC frame")
    offsets = [*layout.frames, length]
    out: list[int] = []
    start = 0  # index into offsets of the first frame of the current part
    while offsets[start] < length:
        prefix = 0 if start == 0 else layout.header_bytes
        begin = 0 if start == 0 else offsets[start]
        end = start
        while (
            end + 1 < len(offsets)
            and end + 1 - start <= per_part
            and prefix + offsets[end + 1] - begin <= max_bytes
        ):
            end += 1
        if end == start:
            raise ValueError("a FLAC frame is larger than upload_max_bytes")
        out.append(offsets[end])
        start = end
    return tuple(out)
