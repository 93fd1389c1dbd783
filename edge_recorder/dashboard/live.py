"""Live updates to browsers as server-sent events (one long GET per open page).

Messages arrive far faster than a person can read, so changes are coalesced: ingest marks
device ids dirty, and at most every 500 ms one `update` event carries the summaries of the
devices that changed, built and encoded once for every subscriber. Each subscriber has a
small queue; one that falls 50 events behind (a stalled laptop, a dead connection the kernel
has not noticed) is dropped rather than buffered without end: EventSource reconnects by
itself and starts again from a full snapshot. The number of subscribers is capped.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable, Iterable

from aiohttp import web

from edge_recorder.support.logs import get_logger

log = get_logger(__name__)

UPDATE_INTERVAL_S = 0.5
KEEPALIVE_S = 15.0
MAX_PENDING = 50

Json = dict[str, object]


def encode_event(name: str, data: Json) -> bytes:
    """One SSE frame (JSON has no raw newlines, so `data:` is a single line)."""
    return f"event: {name}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


class _Subscriber:
    def __init__(self) -> None:
        self.queue: asyncio.Queue[bytes | None] = asyncio.Queue()

    def offer(self, frame: bytes | None) -> bool:
        if frame is not None and self.queue.qsize() >= MAX_PENDING:
            return False
        self.queue.put_nowait(frame)
        return True


class LiveHub:
    """Fan-out of coalesced fleet changes to SSE subscribers (asyncio loop only).

    `build_update(changed_ids)` returns the update payload for the changed devices (without
    them when the id set is empty: a broker state change).
    """

    def __init__(
        self,
        build_update: Callable[[Iterable[str]], Json],
        *,
        max_clients: int = 200,
        interval_s: float = UPDATE_INTERVAL_S,
        keepalive_s: float = KEEPALIVE_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._build_update = build_update
        self.max_clients = max_clients
        self.interval_s = interval_s
        self.keepalive_s = keepalive_s
        self._clock = clock
        self._subscribers: set[_Subscriber] = set()
        self._dirty: set[str] = set()
        self._pending = False
        self._timer: asyncio.TimerHandle | None = None
        self._last_flush = 0.0
        self.dropped_slow = 0
        self.refused = 0
        self.updates_sent = 0

    @property
    def subscribers(self) -> int:
        return len(self._subscribers)

    def notify(self, changed: Iterable[str]) -> None:
        """Devices changed (or, with none, the broker state did): schedule one update."""
        self._dirty.update(changed)
        self._pending = True
        if self._timer is not None or not self._subscribers:
            return
        delay = max(0.0, self._last_flush + self.interval_s - self._clock())
        self._timer = asyncio.get_running_loop().call_later(delay, self._flush)

    def _flush(self) -> None:
        self._timer = None
        self._last_flush = self._clock()
        if not self._pending:
            return
        changed, self._dirty, self._pending = self._dirty, set(), False
        if not self._subscribers:
            return
        frame = encode_event("update", self._build_update(sorted(changed)))
        self.updates_sent += 1
        for subscriber in list(self._subscribers):
            if not subscriber.offer(frame):
                self.dropped_slow += 1
                self._subscribers.discard(subscriber)
                subscriber.queue.put_nowait(None)  # ends its stream; the browser reconnects
                log.info("live subscriber too slow; dropped", pending=MAX_PENDING)

    def close(self) -> None:
        """End every stream (shutdown)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for subscriber in self._subscribers:
            subscriber.queue.put_nowait(None)
        self._subscribers.clear()

    async def stream(self, request: web.Request, snapshot: Json) -> web.StreamResponse:
        """Serve one `text/event-stream` until the client leaves or is dropped."""
        if len(self._subscribers) >= self.max_clients:
            self.refused += 1
            return web.json_response({"error": "too many live clients"}, status=503)
        response = web.StreamResponse(
            headers={
                "Content-Type": "text/event-stream",
                "Cache-Control": "no-store",
                "X-Accel-Buffering": "no",  # nginx: do not buffer the stream
            }
        )
        await response.prepare(request)
        subscriber = _Subscriber()
        self._subscribers.add(subscriber)
        try:
            await response.write(b"retry: 2000\n" + encode_event("snapshot", snapshot))
            if self._pending and self._timer is None:
                self.notify(())
            while True:
                try:
                    frame = await asyncio.wait_for(subscriber.queue.get(), self.keepalive_s)
                except TimeoutError:
                    frame = b": keepalive\n\n"
                if frame is None:
                    break
                await response.write(frame)
        except ConnectionResetError:
            pass
        finally:
            self._subscribers.discard(subscriber)
        with contextlib.suppress(ConnectionResetError, RuntimeError):
            await response.write_eof()
        return response
