"""The few system calls the spool makes, behind a Protocol so tests can count and break them.

Counting lets the benchmark measure write amplification and fsync rate exactly; the faulty
variant lets unit tests inject ENOSPC/EIO at a chosen write without filling a real disk.
"""

from __future__ import annotations

import errno
import os
from dataclasses import dataclass, field
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
