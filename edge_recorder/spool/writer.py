"""The capture path's handle on one recording: append encoded bytes, fsync on a cadence.

Appends go straight to the segment file (one write per record, no user-space buffer to lose)
and are fsynced when `fsync_interval_s` has passed since the last sync, so at most that much
audio (plus one chunk) is at risk on power loss; a process kill loses nothing written.
Every failure is a typed SpoolError and leaves the recording readable up to its last whole
record: the caller knows exactly which bytes are not in the spool.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from edge_recorder.spool.errors import RecordingClosed, SpoolError, os_error
from edge_recorder.spool.fileops import FileOps
from edge_recorder.spool.records import (
    MAX_RECORD_PLAINTEXT,
    RECORD_OVERHEAD,
    SEGMENT_HEADER_BYTES,
    RecordHeader,
    pack_record,
)
from edge_recorder.spool.segments import SegmentRef, SegmentWriter
from edge_recorder.spool.state import SpooledRecording
from edge_recorder.support.logs import get_logger

log = get_logger(__name__)


class WriterHost(Protocol):
    """What a writer needs from the spool (space accounting, notification, the ledger)."""

    lock: threading.RLock

    def _check_append(self, disk_bytes: int) -> None: ...

    def _account(
        self, live: SpooledRecording, disk_bytes: int, new_segment: SegmentRef | None
    ) -> None: ...

    def _writer_closed(self, live: SpooledRecording, reason: str) -> None: ...

    def _write_failed(self, error: SpoolError) -> None: ...


RECENT_BYTES = 64 * 1024  # ~2 s of 16 kHz PCM16: what a live stream that keeps up asks for


class RecordingWriter:
    def __init__(
        self,
        host: WriterHost,
        live: SpooledRecording,
        *,
        key: bytes,
        segments_dir: Path,
        segment_bytes: int,
        fsync_interval_s: float,
        ops: FileOps,
        monotonic: Callable[[], float],
    ) -> None:
        self._host = host
        self._live = live
        self._key = key
        self._dir = segments_dir
        self._segment_bytes = segment_bytes
        self._interval = fsync_interval_s
        self._ops = ops
        self._now = monotonic
        self._segment: SegmentWriter | None = None
        self._last_sync = monotonic()
        self._closed = False
        # The capture thread appends while a timer may flush: one file operation at a time.
        self._io = threading.RLock()

    @property
    def recording_id(self) -> str:
        return self._live.entry.id

    @property
    def offset(self) -> int:
        """Bytes appended so far (the offset the next append starts at)."""
        return self._live.end

    @property
    def durable_offset(self) -> int:
        return self._live.durable

    @property
    def closed(self) -> bool:
        return self._closed

    def append(self, data: bytes | bytearray | memoryview) -> int:
        """Store `data` after the bytes already appended; returns the new length.

        Raises SpoolFull/SpoolDiskFull/SpoolIOError with none of `data` stored if the first
        record fails; pieces of an append larger than 1 MiB are stored in order, so a failure
        part-way leaves a prefix (the new length is then `offset`).
        """
        with self._io:
            if self._closed:
                raise RecordingClosed(f"recording {self.recording_id} is closed")
            if isinstance(data, bytes) and len(data) <= MAX_RECORD_PLAINTEXT:
                if data:  # a chunk: one record, stored (and kept as the live tail) uncopied
                    self._append_record(data)
            else:
                view = memoryview(data).cast("B")  # pieces counted in bytes, not items
                while view:
                    piece = bytes(view[:MAX_RECORD_PLAINTEXT])
                    self._append_record(piece)
                    view = view[len(piece) :]
            if self._now() - self._last_sync >= self._interval:
                self.flush()
            return self._live.end

    def _append_record(self, piece: bytes) -> None:
        record_disk = RECORD_OVERHEAD + len(piece)
        segment = self._segment
        roll = (
            segment is None
            or segment.poisoned
            or (
                segment.ref.size + record_disk > self._segment_bytes
                and segment.ref.size > SEGMENT_HEADER_BYTES
            )
        )
        with self._host.lock:
            self._host._check_append(record_disk + (SEGMENT_HEADER_BYTES if roll else 0))
        if roll or segment is None:
            segment = self._roll()
        seq = segment.seq
        segment.seq += 1  # consumed even if the write fails: a nonce is never used twice
        header = RecordHeader(self._live.uuid.bytes, seq, self._live.end, len(piece))
        framed = pack_record(header, segment.cipher.seal(seq, header.aad, piece))
        try:
            segment.append(framed)
        except OSError as exc:
            raise self._failed(exc, "appending audio") from None
        with self._host.lock:
            start, kept = self._live.recent
            if start + len(kept) != self._live.end or len(kept) >= RECENT_BYTES:
                start, kept = self._live.end, b""  # keep only a contiguous, bounded tail
            self._live.recent = (start, kept + piece)
            self._live.end += len(piece)
            self._host._account(self._live, len(framed), None)

    def _roll(self) -> SegmentWriter:
        """Sync and close the full segment, start the next one at the current offset."""
        old = self._segment
        if old is not None:
            try:
                old.fsync()  # every segment but the last is durable: recovery scans one file
            except OSError as exc:
                raise self._failed(exc, "syncing a full segment") from None
            old.close()
            self._segment = None
            with self._host.lock:
                self._live.durable = self._live.end
        try:
            segment = SegmentWriter.create(
                self._dir, self._live.uuid, self._live.end, self._key, self._ops
            )
        except OSError as exc:
            raise self._failed(exc, "creating a segment") from None
        self._segment = segment
        with self._host.lock:
            self._host._account(self._live, segment.ref.size, segment.ref)
        return segment

    def _failed(self, exc: OSError, what: str) -> SpoolError:
        """The typed error, told to the spool first (a full disk is an alarm until space is
        back, whoever notices it)."""
        error = os_error(exc, what)
        with self._host.lock:
            self._host._write_failed(error)
        return error

    def flush(self) -> None:
        """fsync now; afterwards everything appended survives a power cut."""
        with self._io:
            if self._segment is not None:
                end = self._live.end
                try:
                    self._segment.fsync()
                except OSError as exc:
                    raise self._failed(exc, "syncing audio") from None
                with self._host.lock:
                    self._live.durable = end
            self._last_sync = self._now()

    def flush_if_due(self) -> bool:
        """For a timer: sync if the cadence says so even when no append arrives."""
        with self._io:
            if self._closed or self._now() - self._last_sync < self._interval:
                return False
            self.flush()
            return True

    def close(self, reason: str = "stopped") -> None:
        """Sync, close the file and record the final length in the ledger. Idempotent."""
        with self._io:
            if self._closed:
                return
            try:
                self.flush()
            finally:
                if self._segment is not None:
                    self._segment.close()
                    self._segment = None
                self._closed = True
                self._host._writer_closed(self._live, reason)
            log.info(
                "recording closed",
                recording_id=self.recording_id,
                length_bytes=self._live.end,
                reason=reason,
            )
