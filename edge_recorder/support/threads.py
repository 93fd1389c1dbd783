"""Names the daemon's threads for the kernel, so `top -H`, `ps -L` and /proc show which one
works: Python names a thread for itself only (before 3.14), and every thread reads "python".

Operators watching a device, and `benchmarks/bench_realtime.py` charging CPU to the mic watch,
read these names from /proc/<pid>/task/<tid>/comm."""

from __future__ import annotations

import contextlib
import ctypes
import sys

_PR_SET_NAME = 15  # prctl(2)
_MAX = 15  # the kernel keeps 16 bytes, NUL included


def name_native_thread(name: str) -> None:
    """Give the calling thread `name` (cut to 15 bytes) in the kernel; best effort: a
    platform without prctl keeps the default name."""
    if not sys.platform.startswith("linux"):
        return
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_NAME, name.encode()[:_MAX], 0, 0, 0)
