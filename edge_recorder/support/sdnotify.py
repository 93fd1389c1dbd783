"""sd_notify(3) without blocking: shared by the daemon (`edge-recorder run`) and the dashboard.

systemd-python's `daemon.notify` blocks in sendmsg while holding the GIL once the notify
socket's queue is full (about ten datagrams when systemd is not reading): one STATUS line
would freeze every thread of the process, the watchdog included. The protocol is one
datagram, so it is sent here with MSG_DONTWAIT; a message that does not fit is dropped and
counted, never waited for. Callers depend on the small `NotifySender` protocol so tests can
record messages instead.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from typing import Protocol

from edge_recorder.support.logs import get_logger

log = get_logger(__name__)


class NotifySender(Protocol):
    """Sends one sd_notify message (newline-separated `KEY=value` assignments)."""

    def notify(self, message: str) -> bool: ...


class SystemdNotifier:
    """sd_notify(3) as a non-blocking datagram to `$NOTIFY_SOCKET`; a no-op without it."""

    def __init__(self) -> None:
        self._sock: socket.socket | None = None
        self.dropped = 0

    def notify(self, message: str) -> bool:
        """Send one message; False when there is no socket or it could not be sent now."""
        address = os.environ.get("NOTIFY_SOCKET", "")
        if not address:
            return False
        if address.startswith("@"):  # abstract namespace
            address = "\0" + address[1:]
        if self._sock is None:
            self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        try:
            self._sock.sendto(message.encode(), socket.MSG_DONTWAIT, address)
        except BlockingIOError:
            self.dropped += 1
            if self.dropped == 1:
                log.warning("systemd notify socket is full; dropping notifications")
            return False
        except OSError as exc:
            log.warning("sd_notify failed", error=exc.strerror or str(exc))
            return False
        return True

    def flush(self, timeout_s: float) -> bool:
        """Sends are immediate; nothing is ever queued here."""
        return True


def watchdog_interval(
    environ: Mapping[str, str] | None = None, pid: int | None = None
) -> float | None:
    """The watchdog timeout in seconds if systemd expects pings from this process, else None.

    Same rules as sd_watchdog_enabled(3): WATCHDOG_USEC must be a positive integer and, when
    WATCHDOG_PID is set, it must be our pid (a child must not inherit the duty).
    """
    env = os.environ if environ is None else environ
    raw = env.get("WATCHDOG_USEC", "")
    try:
        usec = int(raw)
    except ValueError:
        return None
    if usec <= 0:
        return None
    owner = env.get("WATCHDOG_PID")
    if owner:
        try:
            if int(owner) != (os.getpid() if pid is None else pid):
                return None
        except ValueError:
            return None
    return usec / 1_000_000
