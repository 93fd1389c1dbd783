"""Reads a recording's exact encoded bytes back from any offset, one record in memory at a time.

Each record is checked on the way out: CRC, recording id, contiguous offset, increasing seq,
then the AES-GCM tag. Any failure raises CorruptRecord naming the offset, and the spool
quarantines the recording; the bytes before that point stay readable. A cursor remembers where
the last read ended, so sequential reads (the delivery engine's pattern) never rescan a segment.
"""

from __future__ import annotations

import bisect
import os
from dataclasses import dataclass
from typing import BinaryIO

from cryptography.exceptions import InvalidTag

from edge_recorder.spool.crypto import SegmentCipher
from edge_recorder.spool.errors import CorruptRecord
from edge_recorder.spool.records import SEGMENT_HEADER_BYTES, SegmentHeader, read_record
from edge_recorder.spool.segments import SegmentRef
from edge_recorder.spool.state import SpooledRecording


@dataclass
class _Open:
    ref: SegmentRef
    file: BinaryIO
    cipher: SegmentCipher
    next_pos: int  # file position of the next record
    next_offset: int  # recording offset that record must have
    last_seq: int
    index: int  # position of `ref` in the recording's segment list


class RecordingReader:
    """Not thread-safe; the spool keeps one per recording and serialises its use."""

    def __init__(self, live: SpooledRecording, key: bytes) -> None:
        self._live = live
        self._key = key
        self._open: _Open | None = None
        self._cached: tuple[int, bytes] | None = None  # (offset, plaintext) of the last record

    def close(self) -> None:
        if self._open is not None:
            self._open.file.close()
            self._open = None

    def read(self, offset: int, max_bytes: int, end: int) -> bytes:
        """Bytes [offset, min(offset + max_bytes, end)); `end` is the caller's readable end."""
        stop = min(end, offset + max_bytes)
        out = bytearray()
        position = offset
        while position < stop:
            rec_offset, plaintext = self._record_at(position)
            start = position - rec_offset
            piece = plaintext[start : start + (stop - position)]
            out += piece
            position += len(piece)
        return bytes(out)

    def _record_at(self, offset: int) -> tuple[int, bytes]:
        cached = self._cached
        if cached is not None and cached[0] <= offset < cached[0] + len(cached[1]):
            return cached
        current = self._segment_for(offset)
        while True:
            record = read_record(
                current.file, current.next_pos, os.fstat(current.file.fileno()).st_size
            )
            where = f"segment {current.ref.path.name} at file position {current.next_pos}"
            if record is None:
                raise CorruptRecord(
                    f"unreadable or missing record at offset {current.next_offset} ({where})"
                )
            h = record.header
            if h.recording != self._live.uuid.bytes or h.offset != current.next_offset:
                raise CorruptRecord(
                    f"record out of place at offset {current.next_offset} ({where})"
                )
            if h.seq <= current.last_seq:
                raise CorruptRecord(f"record replayed at offset {current.next_offset} ({where})")
            current.next_pos += h.disk_bytes
            current.next_offset = h.end
            current.last_seq = h.seq
            if h.end <= offset:
                continue  # before what we want: skip without decrypting
            try:
                plaintext = current.cipher.open(h.seq, h.aad, record.ciphertext)
            except InvalidTag:
                raise CorruptRecord(
                    f"record at offset {h.offset} failed authentication ({where})"
                ) from None
            self._cached = (h.offset, plaintext)
            return self._cached

    def _segment_for(self, offset: int) -> _Open:
        current = self._open
        if current is not None and current.next_offset <= offset:
            # O(1) per record: segments are only ever appended, so the open one's position
            # holds and the next one's base (if any yet) is where it ends. Looking the offset
            # up among every segment's base per record grew with the recording's length.
            segments = self._live.segments
            following = current.index + 1
            if following >= len(segments) or offset < segments[following].base_offset:
                return current
        self.close()
        segments = list(self._live.segments)
        index = self._segment_index(offset)
        if index < 0:
            raise CorruptRecord(f"no segment holds offset {offset} (segment file missing?)")
        ref = segments[index]
        try:
            f = ref.path.open("rb")
        except FileNotFoundError:
            raise CorruptRecord(f"segment {ref.path.name} is missing") from None
        header = SegmentHeader.unpack(f.read(SEGMENT_HEADER_BYTES))
        if (
            header is None
            or header.recording != self._live.uuid.bytes
            or (header.base_offset != ref.base_offset)
        ):
            f.close()
            raise CorruptRecord(f"segment {ref.path.name} has a damaged header")
        self._open = _Open(
            ref, f, SegmentCipher(self._key, header.salt), SEGMENT_HEADER_BYTES, ref.base_offset,
            -1, index,
        )  # fmt: skip
        return self._open

    def _segment_index(self, offset: int) -> int:
        bases = [s.base_offset for s in self._live.segments]
        return bisect.bisect_right(bases, offset) - 1
