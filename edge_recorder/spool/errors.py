"""Typed spool errors: every way the spool says "no" has its own class and a readable reason.

The controller maps these to alarms (`reason` is the short alarm code shown on the LED/status);
nothing here carries audio or patient context.
"""

from __future__ import annotations

import errno


class SpoolError(Exception):
    """Base class; `reason` is a short, stable alarm code."""

    reason = "spool-error"


class SpoolLocked(SpoolError):
    """Another process (normally the daemon) owns the spool directory."""

    reason = "spool-locked"


class SpoolKeyError(SpoolError):
    """The device key is missing, malformed or not the key the spool was written with."""

    reason = "spool-key"


class SpoolRefused(SpoolError):
    """A new encounter was refused because the spool is above its high-water mark."""

    reason = "spool-high-water"

    def __init__(self, message: str, reason: str | None = None) -> None:
        super().__init__(message)
        if reason is not None:
            self.reason = reason


class SpoolFull(SpoolError):
    """An append would exceed the byte cap or eat the disk's free-space reserve.

    The bytes of the failed append are NOT in the spool; the writer stays usable for close().
    """

    reason = "spool-full"

    def __init__(self, message: str, reason: str | None = None) -> None:
        super().__init__(message)
        if reason is not None:
            self.reason = reason


class SpoolDiskFull(SpoolFull):
    """The operating system reported ENOSPC/EDQUOT while writing."""

    reason = "disk-full"


class SpoolIOError(SpoolError):
    """Any other OS error while writing (EIO on a dying SD card, EROFS after a remount...)."""

    reason = "spool-io"


class UnknownRecording(SpoolError, KeyError):
    """No recording/encounter with that id in the spool."""

    reason = "spool-unknown"


class RecordingClosed(SpoolError):
    """Append to a recording that was already closed."""

    reason = "recording-closed"


class CorruptRecord(SpoolError):
    """A record failed its CRC, authentication or position check (quarantined, never raised
    out of open)."""

    reason = "spool-corrupt"


def os_error(exc: OSError, what: str) -> SpoolError:
    """The typed spool error for an OS error: disk full is told apart from other I/O."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return SpoolDiskFull(f"disk full while {what}: {exc.strerror}")
    return SpoolIOError(f"I/O error while {what}: {exc.strerror} (errno {exc.errno})")
