"""Start-up repair after a crash, touching as little as possible.

Only the LAST segment of a recording that was open when the process died is read (every
earlier segment was fsynced before the writer rolled past it), and only its record headers and
CRCs (no decryption). Outcomes:
- torn tail (invalid bytes with no valid record after them): truncated, noted;
- bad bytes followed by valid records (corruption, not a tear): the file is left untouched, the
  recording keeps its readable prefix and is quarantined with the reason;
- a last segment with no valid header and no valid record (torn at creation, or zeros after
  a power cut): removed, since it cannot hold anything that was durable.
Nothing here raises for bad data: every problem becomes a RecoveryResult the spool reports.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from edge_recorder.spool.fileops import FileOps
from edge_recorder.spool.records import (
    SEGMENT_HEADER_BYTES,
    SegmentHeader,
    find_valid_record_after,
    iter_records,
)
from edge_recorder.spool.state import SpooledRecording


@dataclass
class RecoveryResult:
    end: int  # readable length of the recording
    truncated_bytes: int = 0
    removed_files: list[str] = field(default_factory=list)
    corrupt: str | None = None  # reason to quarantine


def _segment_is_torn(path: Path, uuid_bytes: bytes, base: int, size: int) -> bool | None:
    """True if the segment never got a valid header AND holds no valid record (what a power
    cut leaves of a file created just before it: zeros or garbage, nothing durable);
    False if its header is fine; None if the header is bad but records follow (corrupt)."""
    with path.open("rb") as f:
        header = SegmentHeader.unpack(f.read(SEGMENT_HEADER_BYTES))
        if header is not None and header.recording == uuid_bytes and header.base_offset == base:
            return False
        return True if find_valid_record_after(f, 0, size) is None else None


def recover_tail(live: SpooledRecording, ops: FileOps) -> RecoveryResult:
    """Find the readable end of a crash-open recording and repair its last segment."""
    result = RecoveryResult(end=0)
    while live.segments:
        ref = live.segments[-1]
        result.end = ref.base_offset
        try:
            torn = ref.size < SEGMENT_HEADER_BYTES or _segment_is_torn(
                ref.path, live.uuid.bytes, ref.base_offset, ref.size
            )
        except OSError as exc:
            result.corrupt = f"cannot read segment {ref.path.name}: {exc.strerror}"
            return result
        if torn is None:
            result.corrupt = f"segment {ref.path.name} has a damaged header"
            return result
        if not torn:
            break
        live.segments.pop()  # no record can be in it: nothing durable is lost
        ref.path.unlink(missing_ok=True)
        result.removed_files.append(ref.path.name)
        result.truncated_bytes += ref.size
    if not live.segments:
        return result
    ref = live.segments[-1]
    with ref.path.open("rb") as f:
        size = os.fstat(f.fileno()).st_size
        position, offset, last_seq = SEGMENT_HEADER_BYTES, ref.base_offset, -1
        for record in iter_records(f, SEGMENT_HEADER_BYTES, size):
            h = record.header
            if h.recording != live.uuid.bytes or h.offset != offset or h.seq <= last_seq:
                break
            position, offset, last_seq = position + h.disk_bytes, h.end, h.seq
        result.end = offset
        if position == size:
            ops.fsync(f.fileno())  # a kill leaves data in the page cache: make it durable now
            return result
        later = find_valid_record_after(f, position + 1, size)
    if later is not None:
        result.corrupt = (
            f"corrupt record at offset {offset} in segment {ref.path.name} "
            f"(file position {position}); valid records follow, file left as is"
        )
        return result
    fd = os.open(ref.path, os.O_WRONLY)
    try:
        ops.ftruncate(fd, position)
        ops.fsync(fd)
    finally:
        os.close(fd)
    result.truncated_bytes += size - position
    ref.size = position
    return result
