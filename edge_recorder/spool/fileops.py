"""The few system calls the spool makes, behind a Protocol so tests can count and break them.

Counting lets the benchmark measure write amplification and fsync rate exactly; the faulty
variant lets unit tests inject ENOSPC/EIO at a chosen write without filling a real disk.
"""

from __future__ import annotations

import errno
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol


class FileOps(Protocol):
    def write(self, fd: int, data: bytes) -> int: ...

    def fsync(self, fd: int) -> None: ...

    def ftruncate(self, fd: int, length: int) -> None: ...

    def free_bytes(self, path: str) -> int: ...


class OsFileOps:
    """The real thing."""

    def write(self, fd: int, data: bytes) -> int:
        return os.write(fd, data)

    def fsync(self, fd: int) -> None:
        os.fsync(fd)

    def ftruncate(self, fd: int, length: int) -> None:
        os.ftruncate(fd, length)

    def free_bytes(self, path: str) -> int:
        st = os.statvfs(path)
        return st.f_bavail * st.f_frsize


def fsync_dir(path: Path, ops: FileOps | None = None) -> None:
    """fsync a directory, so a rename or a new file in it survives a power cut."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        (ops or OsFileOps()).fsync(fd)
    finally:
        os.close(fd)


def write_private(directory: Path, name: str, blob: bytes) -> Path:
    """`directory/name` = `blob`, mode 0600, atomically and durably."""
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = directory / name
    tmp = path.with_name(f".{name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        write_all(OsFileOps(), fd, blob)
        os.fsync(fd)
    finally:
        os.close(fd)
    tmp.replace(path)
    fsync_dir(directory)
    return path


def write_all(ops: FileOps, fd: int, data: bytes) -> None:
    """os.write may write less than asked (signals, near-full disks): loop until done."""
    view = memoryview(data)
    while view:
        written = ops.write(fd, bytes(view))
        if written <= 0:
            raise OSError(errno.EIO, "short write returned 0")
        view = view[written:]


@dataclass
class CountingFileOps(OsFileOps):
    """Real I/O plus counters (bench + tests). `fail_at_write` makes the Nth write (and the
    next `fail_times - 1`) fail with `fail_errno` after writing `fail_partial` bytes (a torn
    write); `fake_free` overrides the free-space reading."""

    bytes_written: int = 0
    writes: int = 0
    fsyncs: int = 0
    fail_at_write: int | None = None
    fail_errno: int = errno.ENOSPC
    fail_partial: int = 0
    fail_times: int = 1
    fail_ftruncate: bool = False
    fake_free: int | None = None
    fsync_log: list[int] = field(default_factory=list)

    def write(self, fd: int, data: bytes) -> int:
        self.writes += 1
        if self.fail_at_write is not None and self.writes >= self.fail_at_write:
            self.fail_times -= 1
            if self.fail_times <= 0:
                self.fail_at_write = None
            if self.fail_partial:
                self.bytes_written += os.write(fd, data[: self.fail_partial])
            raise OSError(self.fail_errno, os.strerror(self.fail_errno))
        n = os.write(fd, data)
        self.bytes_written += n
        return n

    def ftruncate(self, fd: int, length: int) -> None:
        if self.fail_ftruncate:
            raise OSError(errno.EIO, "injected ftruncate failure")
        os.ftruncate(fd, length)

    def fsync(self, fd: int) -> None:
        self.fsyncs += 1
        self.fsync_log.append(fd)
        os.fsync(fd)

    def free_bytes(self, path: str) -> int:
        if self.fake_free is not None:
            return self.fake_free
        return super().free_bytes(path)
