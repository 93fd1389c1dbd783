"""Byte framing of segment files: a segment header, then self-describing records.

Segment header (68 bytes): magic "ERSPSEG1" | recording id (16, UUID bytes) | salt (32) |
base offset (u64) | CRC32C of the preceding 64 bytes.

Record: magic "ERR1" | recording id (16) | seq (u32) | offset (u64) | length (u32) |
CRC32C (u32) of the 36 header bytes before it plus the ciphertext | ciphertext (length + 16).

Every record names its recording, its byte offset in that recording and its length, so a
reader can verify position as well as integrity. The CRC32C (hardware-accelerated via
google-crc32c) separates torn or rotten bytes from a wrong key cheaply; the AES-GCM tag, with
the 36 header bytes as associated data, stops a record from being altered or moved.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

import google_crc32c

SEGMENT_MAGIC = b"ERSPSEG1"
RECORD_MAGIC = b"ERR1"
TAG_BYTES = 16
SALT_BYTES = 32
MAX_RECORD_PLAINTEXT = 1 << 20  # larger appends are split; bounds what a corrupt length reads

_SEG = struct.Struct("<8s16s32sQ")
_REC = struct.Struct("<4s16sIQI")
_CRC = struct.Struct("<I")
SEGMENT_HEADER_BYTES = _SEG.size + _CRC.size  # 68
RECORD_HEADER_BYTES = _REC.size + _CRC.size  # 40
RECORD_OVERHEAD = RECORD_HEADER_BYTES + TAG_BYTES  # bytes on disk per record beyond the audio


def crc32c(data: bytes, start: int = 0) -> int:
    return int(google_crc32c.extend(start, data))


@dataclass(frozen=True)
class SegmentHeader:
    recording: bytes  # 16 UUID bytes
    salt: bytes
    base_offset: int

    def pack(self) -> bytes:
        body = _SEG.pack(SEGMENT_MAGIC, self.recording, self.salt, self.base_offset)
        return body + _CRC.pack(crc32c(body))

    @classmethod
    def unpack(cls, raw: bytes) -> SegmentHeader | None:
        """The header, or None when the bytes are short, foreign or fail the CRC."""
        if len(raw) < SEGMENT_HEADER_BYTES:
            return None
        body, (crc,) = raw[: _SEG.size], _CRC.unpack_from(raw, _SEG.size)
        magic, rec, salt, base = _SEG.unpack(body)
        if magic != SEGMENT_MAGIC or crc32c(body) != crc:
            return None
        return cls(rec, salt, base)


@dataclass(frozen=True)
class RecordHeader:
    recording: bytes
    seq: int  # record number inside its segment: the AES-GCM nonce counter
    offset: int  # byte offset of this record's plaintext in the recording
    length: int  # plaintext bytes

    @property
    def aad(self) -> bytes:
        return _REC.pack(RECORD_MAGIC, self.recording, self.seq, self.offset, self.length)

    @property
    def disk_bytes(self) -> int:
        return RECORD_HEADER_BYTES + self.length + TAG_BYTES

    @property
    def end(self) -> int:
        return self.offset + self.length


def pack_record(header: RecordHeader, ciphertext: bytes) -> bytes:
    """Header + CRC + ciphertext, ready for a single write."""
    if len(ciphertext) != header.length + TAG_BYTES:
        raise ValueError("ciphertext length does not match header")
    aad = header.aad
    return aad + _CRC.pack(crc32c(ciphertext, crc32c(aad))) + ciphertext


def parse_record_header(raw: bytes) -> tuple[RecordHeader, int] | None:
    """(header, stored crc) if `raw` starts with a plausible record header."""
    if len(raw) < RECORD_HEADER_BYTES:
        return None
    magic, rec, seq, offset, length = _REC.unpack_from(raw, 0)
    if magic != RECORD_MAGIC or length > MAX_RECORD_PLAINTEXT:
        return None
    (crc,) = _CRC.unpack_from(raw, _REC.size)
    return RecordHeader(rec, seq, offset, length), crc


def record_crc_ok(header: RecordHeader, stored_crc: int, ciphertext: bytes) -> bool:
    return crc32c(ciphertext, crc32c(header.aad)) == stored_crc


@dataclass(frozen=True)
class ScannedRecord:
    position: int  # file position of the record's first byte
    header: RecordHeader
    ciphertext: bytes


def read_record(f: BinaryIO, position: int, limit: int) -> ScannedRecord | None:
    """The valid record at `position` (not reading past `limit`), or None."""
    if position + RECORD_HEADER_BYTES > limit:
        return None
    f.seek(position)
    parsed = parse_record_header(f.read(RECORD_HEADER_BYTES))
    if parsed is None:
        return None
    header, crc = parsed
    if position + header.disk_bytes > limit:
        return None
    ciphertext = f.read(header.length + TAG_BYTES)
    if len(ciphertext) != header.length + TAG_BYTES or not record_crc_ok(header, crc, ciphertext):
        return None
    return ScannedRecord(position, header, ciphertext)


def iter_records(f: BinaryIO, start: int, limit: int) -> Iterator[ScannedRecord]:
    """Valid records from `start`, stopping silently at the first invalid or short one.

    One record in memory at a time: scanning a 16 MB segment never loads the segment.
    """
    position = start
    while True:
        record = read_record(f, position, limit)
        if record is None:
            return
        yield record
        position += record.header.disk_bytes


def find_valid_record_after(
    f: BinaryIO, start: int, limit: int, chunk: int = 1 << 20
) -> int | None:
    """Position of the first valid record at or after `start`, searching by magic.

    Tells a torn tail (nothing valid follows) from corruption in the middle of a file
    (valid records follow the bad bytes), reading at most `chunk` bytes at a time.
    """
    position = start
    while position < limit:
        f.seek(position)
        window = f.read(min(chunk, limit - position))
        if not window:
            return None
        index = window.find(RECORD_MAGIC)
        while index != -1:
            if read_record(f, position + index, limit) is not None:
                return position + index
            index = window.find(RECORD_MAGIC, index + 1)
        position += max(1, len(window) - len(RECORD_MAGIC) + 1)
    return None
