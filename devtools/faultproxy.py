"""A TCP fault proxy: put it between the device and a service to break the network on purpose.

The chaos tests and the demo both use it, so the outages they prove the device survives are
the same ones: connections cut (FIN), reset (RST), black-holed (bytes silently swallowed, the
way a dead Wi-Fi access point behaves), slowed, or delayed, per direction.

A connection that lost bytes in a black hole is reset when the hole closes, never forwarded
again: TCP cannot deliver a stream with a gap in it (after an outage it either retransmits
everything or the connection dies, e.g. at a NAT that forgot it). Forwarding the bytes after
the gap would hand the peer a corrupt stream (an HTTP/2 peer then decodes headers against
an HPACK table that is missing entries, and every later call on it fails or is misread).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from dataclasses import dataclass, field
from typing import Literal

from edge_recorder.support.logs import get_logger

log = get_logger(__name__)

Direction = Literal["up", "down", "both"]  # up: device → service; down: service → device
Mode = Literal["pass", "cut", "reset", "blackhole", "slow"]
_PUMP_BYTES = 65536


@dataclass
class ProxyStats:
    connections: int = 0
    refused: int = 0
    bytes_up: int = 0
    bytes_down: int = 0
    swallowed_up: int = 0
    swallowed_down: int = 0
    broken: int = 0  # connections reset because they had lost bytes in a black hole


@dataclass(eq=False)  # identity semantics: links live in a set
class _Link:
    client: asyncio.StreamWriter
    upstream: asyncio.StreamWriter
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    lost: set[str] = field(default_factory=set)  # directions that swallowed bytes


def _abort(writer: asyncio.StreamWriter) -> None:
    """Close with RST instead of FIN (SO_LINGER 0), as a crashed middlebox would."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


class FaultProxy:
    """Forwards `listen` → `target` and applies the current fault mode to every connection."""

    def __init__(
        self,
        target_host: str,
        target_port: int,
        listen_host: str = "127.0.0.1",
        listen_port: int = 0,
    ) -> None:
        self.target = (target_host, target_port)
        self._listen = (listen_host, listen_port)
        self._server: asyncio.Server | None = None
        self._links: set[_Link] = set()
        self.mode: Mode = "pass"
        self.direction: Direction = "both"
        self.bytes_per_s = 0.0
        self.latency_s = 0.0
        self.stats = ProxyStats()

    @property
    def port(self) -> int:
        assert self._server is not None, "proxy not started"
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    @property
    def address(self) -> str:
        return f"{self._listen[0]}:{self.port}"

    async def start(self) -> FaultProxy:
        self._server = await asyncio.start_server(self._accept, *self._listen)
        return self

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for link in list(self._links):
            self._drop(link, rst=False)

    async def __aenter__(self) -> FaultProxy:
        return await self.start()

    async def __aexit__(self, *_: object) -> None:
        await self.stop()

    # --- fault controls -------------------------------------------------------------------
    def pass_through(self) -> None:
        """Heal the network: connections that lost bytes are reset (swallowed data stays
        lost, and no stream continues past a gap); the others and new ones go through."""
        self._set("pass", "both")

    def cut(self) -> None:
        """Close every connection with FIN and refuse new ones the same way."""
        self._set("cut", "both")
        for link in list(self._links):
            self._drop(link, rst=False)

    def reset(self) -> None:
        """Reset every connection (RST) and reset new ones."""
        self._set("reset", "both")
        for link in list(self._links):
            self._drop(link, rst=True)

    def blackhole(self, direction: Direction = "both") -> None:
        """Keep connections open but swallow bytes in `direction` (a silent dead link)."""
        self._set("blackhole", direction)

    def slow(self, bytes_per_s: float, direction: Direction = "both") -> None:
        """Throttle `direction` to about `bytes_per_s`."""
        self.bytes_per_s = bytes_per_s
        self._set("slow", direction)

    def set_latency(self, seconds: float) -> None:
        """Delay every forwarded block by `seconds` (both directions)."""
        self.latency_s = seconds

    def _set(self, mode: Mode, direction: Direction) -> None:
        self.mode, self.direction = mode, direction
        log.info("fault proxy mode", mode=mode, direction=direction, target_port=self.target[1])
        for link in list(self._links):
            if any(not self._swallows(lost) for lost in link.lost):
                self._break(link)

    def _applies(self, direction: Literal["up", "down"]) -> bool:
        return self.direction in ("both", direction)

    def _swallows(self, direction: str) -> bool:
        return self.mode == "blackhole" and self.direction in ("both", direction)

    def _break(self, link: _Link) -> None:
        """Reset a connection whose byte stream has a gap, so no byte after it is delivered."""
        self.stats.broken += 1
        log.info("fault proxy resets a connection that lost bytes", lost=sorted(link.lost))
        self._drop(link, rst=True)

    # --- plumbing ---------------------------------------------------------------------------
    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.mode in ("cut", "reset"):
            self.stats.refused += 1
            if self.mode == "reset":
                _abort(writer)
            else:
                writer.close()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            self.stats.refused += 1
            _abort(writer)
            return
        if self.mode in ("cut", "reset"):
            # Cut while dialling upstream: this link was not in `_links` for cut() to drop,
            # so without this check it would forward through the outage (a keep-alive
            # connection the device then reuses, never seeing the cut).
            self.stats.refused += 1
            up_writer.close()
            if self.mode == "reset":
                _abort(writer)
            else:
                writer.close()
            return
        self.stats.connections += 1
        link = _Link(writer, up_writer)
        self._links.add(link)
        link.tasks = [
            asyncio.create_task(self._pump(reader, up_writer, "up", link)),
            asyncio.create_task(self._pump(up_reader, writer, "down", link)),
        ]

    async def _pump(
        self,
        source: asyncio.StreamReader,
        sink: asyncio.StreamWriter,
        direction: Literal["up", "down"],
        link: _Link,
    ) -> None:
        try:
            while data := await source.read(_PUMP_BYTES):
                if self._swallows(direction):
                    link.lost.add(direction)
                    if direction == "up":
                        self.stats.swallowed_up += len(data)
                    else:
                        self.stats.swallowed_down += len(data)
                    continue
                if direction in link.lost:  # bytes after a gap: end it, never skip the gap
                    self._break(link)
                    return
                if self.latency_s:
                    await asyncio.sleep(self.latency_s)  # the fault itself, not synchronisation
                if self.mode == "slow" and self._applies(direction) and self.bytes_per_s > 0:
                    await asyncio.sleep(len(data) / self.bytes_per_s)
                sink.write(data)
                await sink.drain()
                if direction == "up":
                    self.stats.bytes_up += len(data)
                else:
                    self.stats.bytes_down += len(data)
        except (ConnectionError, OSError):
            pass
        finally:
            if link in self._links:
                self._drop(link, rst=False)

    def _drop(self, link: _Link, rst: bool) -> None:
        self._links.discard(link)
        for writer in (link.client, link.upstream):
            if rst:
                _abort(writer)
            else:
                writer.close()
        current = asyncio.current_task()
        for task in link.tasks:
            if task is not current:
                task.cancel()
