"""Append-only segment files: one recording's records, rolled at `spool.segment_bytes`.

Name: `segments/<recording uuid hex>-<base offset, 16 hex>.seg`, so the directory listing alone
(no reads) tells which recording and which byte range a file starts; start-up therefore stats
files instead of reading them (a recording's sealed header is in `headers/`: `headers.py`).
A segment is only ever appended to by the process that created it; a write that fails is cut
back off (ftruncate) so no torn record sits before later ones.
"""

from __future__ import annotations

import errno
import os
import re
import uuid
from dataclasses import dataclass
from pathlib import Path

from edge_recorder.spool.crypto import SegmentCipher, new_salt
from edge_recorder.spool.fileops import FileOps, write_all
from edge_recorder.spool.records import SEGMENT_HEADER_BYTES, SegmentHeader

SEGMENTS_DIR = "segments"
_NAME = re.compile(r"^([0-9a-f]{32})-([0-9a-f]{16})\.seg$")


@dataclass(slots=True)
class SegmentRef:
    """A segment file as known from its name (and, for the one being written, its size).
    Holds the directory (one object shared by every ref of a listing), not the file's own
    Path: a Path costs ~0.8 kB, and a backlog holds a ref per segment (issue #24)."""

    recording: str  # uuid hex
    base_offset: int
    directory: Path
    size: int

    @property
    def path(self) -> Path:
        return self.directory / segment_name(self.recording, self.base_offset)


def segment_name(recording_hex: str, base_offset: int) -> str:
    return f"{recording_hex}-{base_offset:016x}.seg"


def list_segments(directory: Path) -> tuple[dict[str, list[SegmentRef]], list[Path]]:
    """Segments grouped by recording (sorted by base offset), plus stray files, from a
    directory listing and one stat per file; no segment content is read."""
    groups: dict[str, list[SegmentRef]] = {}
    strays: list[Path] = []
    if not directory.is_dir():
        return groups, strays
    for entry in os.scandir(directory):
        match = _NAME.match(entry.name)
        if not match or not entry.is_file(follow_symlinks=False):
            strays.append(Path(entry.path))
            continue
        ref = SegmentRef(match[1], int(match[2], 16), directory, entry.stat().st_size)
        groups.setdefault(ref.recording, []).append(ref)
    for refs in groups.values():
        refs.sort(key=lambda r: r.base_offset)
    return groups, strays


def recording_hex(recording_id: str) -> str:
    return uuid.UUID(recording_id).hex


class SegmentWriter:
    """The one open, append-only segment of a recording being captured."""

    def __init__(self, ref: SegmentRef, fd: int, cipher: SegmentCipher, ops: FileOps) -> None:
        self.ref = ref
        self.cipher = cipher
        self._fd = fd
        self._ops = ops
        self.seq = 0  # next record number (nonce counter); never reused, even after a failure
        self.synced_size = 0
        self.poisoned = False

    @classmethod
    def create(
        cls, directory: Path, recording: uuid.UUID, base_offset: int, key: bytes, ops: FileOps
    ) -> SegmentWriter:
        """Create the file with its header; on any failure leave no file behind."""
        salt = new_salt()
        path = directory / segment_name(recording.hex, base_offset)
        header = SegmentHeader(recording.bytes, salt, base_offset).pack()
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o600)
        except FileExistsError:
            # Left by a failed roll at this same offset (it can hold no record): replace it.
            if path.stat().st_size > SEGMENT_HEADER_BYTES:
                raise OSError(errno.EEXIST, f"segment {path.name} already holds data") from None
            path.unlink()
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o600)
        try:
            write_all(ops, fd, header)
        except OSError:
            os.close(fd)
            path.unlink(missing_ok=True)
            raise
        ref = SegmentRef(recording.hex, base_offset, directory, len(header))
        return cls(ref, fd, SegmentCipher(key, salt), ops)

    def append(self, data: bytes) -> None:
        """Write one framed record; on failure cut the file back to its last whole record."""
        try:
            write_all(self._ops, self._fd, data)
        except OSError:
            try:
                self._ops.ftruncate(self._fd, self.ref.size)
            except OSError:
                self.poisoned = True  # torn bytes stay at the end: never append after them
            raise
        self.ref.size += len(data)

    def fsync(self) -> None:
        if self.synced_size != self.ref.size:
            self._ops.fsync(self._fd)
            self.synced_size = self.ref.size

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
