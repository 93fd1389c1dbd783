"""A real sd_notify receiver: an AF_UNIX datagram socket the test binds and names in NOTIFY_SOCKET.

The socket lives in the abstract namespace ("@name"), which sd_notify(3) supports; that avoids
the 108-byte path limit that pytest's long tmp_path names run into.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
import uuid
from collections.abc import Callable, Iterator

import pytest


def parse(message: str) -> dict[str, str]:
    """`READY=1\\nSTATUS=idle` → {"READY": "1", "STATUS": "idle"}."""
    fields: dict[str, str] = {}
    for line in message.splitlines():
        key, _, value = line.partition("=")
        fields[key] = value
    return fields


class NotifySocket:
    """Receives sd_notify datagrams; every message seen is kept in `history`."""

    def __init__(self) -> None:
        self.address = f"@edge-recorder-test-{uuid.uuid4().hex}"
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        self.sock.bind("\0" + self.address[1:])
        self.history: list[tuple[float, dict[str, str]]] = []

    def close(self) -> None:
        self.sock.close()

    def _keep(self, data: bytes) -> dict[str, str]:
        fields = parse(data.decode())
        self.history.append((time.monotonic(), fields))
        return fields

    def recv(self, timeout: float) -> dict[str, str] | None:
        """The next message, or None when none arrives within `timeout` seconds."""
        self.sock.setblocking(True)
        self.sock.settimeout(max(timeout, 0.001))
        try:
            return self._keep(self.sock.recv(65536))
        except TimeoutError:
            return None

    def wait_for(
        self, predicate: Callable[[dict[str, str]], bool], timeout: float = 10.0
    ) -> dict[str, str]:
        """The first message (from now on) matching `predicate`; fails at the deadline."""
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            fields = self.recv(left)
            if fields is not None and predicate(fields):
                return fields
        seen = [f for _, f in self.history[-10:]]
        raise AssertionError(f"no matching sd_notify message within {timeout}s; last: {seen}")

    def drain(self) -> list[dict[str, str]]:
        """Everything already queued, without waiting."""
        out: list[dict[str, str]] = []
        self.sock.setblocking(False)
        with contextlib.suppress(BlockingIOError):
            while True:
                out.append(self._keep(self.sock.recv(65536)))
        return out

    async def arecv(self, timeout: float) -> dict[str, str] | None:
        """`recv` for tests whose event loop must keep running (the supervisor lives on it)."""
        self.sock.setblocking(False)
        loop = asyncio.get_running_loop()
        try:
            data = await asyncio.wait_for(loop.sock_recv(self.sock, 65536), timeout)
        except TimeoutError:
            return None
        return self._keep(data)


@pytest.fixture
def notify_socket() -> Iterator[NotifySocket]:
    receiver = NotifySocket()
    try:
        yield receiver
    finally:
        receiver.close()
