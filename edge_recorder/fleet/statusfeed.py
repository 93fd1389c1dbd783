"""Reading the daemon's status on its own event loop: on change, and every interval.

The status provider belongs to the daemon and is only ever called on the daemon's loop, so it
needs no locking. A one-second check publishes real changes (state, alarms, backlog count,
mic presence) at once; levels, byte counts and the time of the last delivery (it moves with
every acknowledgement while streaming) wait for the interval: a status publish (system
readings, JSON, MQTT) every second while recording would be most of fleet reporting's CPU.

The daemon builds a status on its own one-second health pass anyway and hands it over
(`offer`): from the first offer on, that pass is the one-second check, and the feed's own
timer only keeps the interval (one wake-up of an idle device a second fewer, issue #24).
A host that never offers (tests, benchmarks) gets the feed's own one-second poll.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from datetime import UTC, datetime

from edge_recorder.fleet.payloads import status_signature
from edge_recorder.status import DeviceStatus
from edge_recorder.support.logs import get_logger

log = get_logger(__name__)

POLL_S = 1.0  # news is looked for this often when the host does not offer its status


class StatusFeed:
    def __init__(
        self,
        provider: Callable[[], DeviceStatus],
        deliver: Callable[[DeviceStatus], None],
        interval_s: float,
    ) -> None:
        self._provider = provider
        self._deliver = deliver
        self._interval_s = interval_s
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._offered = False  # the host offers its status every pass: no poll of our own
        self._last_sig = ""
        self._last_sent = time.monotonic()

    def read(self) -> DeviceStatus:
        """A private copy of the current status (loop thread)."""
        try:
            return self._provider().model_copy(deep=True)
        except Exception as exc:  # a provider bug must not stop fleet reporting
            log.error("status provider failed", error_type=type(exc).__name__)
            return DeviceStatus(state="error", error_reason="status unavailable")

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        self._deliver(self.read())
        self._task = asyncio.create_task(self._run(), name="fleet-status")

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()

    def changed(self) -> None:
        """Ask for a fresh status now (any thread; never blocks)."""
        loop, wake = self._loop, self._wake
        if loop is None or wake is None or loop.is_closed():
            return
        try:
            same = asyncio.get_running_loop() is loop
        except RuntimeError:
            same = False
        if same:
            wake.set()
        else:
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                loop.call_soon_threadsafe(wake.set)

    def offer(self, status: DeviceStatus) -> None:
        """The host's status of this moment (loop thread): published if it is news or the
        interval is up. Not kept: a copy is what is published."""
        self._offered = True
        self._consider(status, copy=True)

    async def _run(self) -> None:
        assert self._wake is not None
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._poll_s())
            self._wake.clear()
            self._consider(self.read(), copy=False)

    def _poll_s(self) -> float:
        """How long the feed waits for a `changed()` before it reads the status itself."""
        return self._interval_s if self._offered else min(POLL_S, self._interval_s)

    def _consider(self, status: DeviceStatus, *, copy: bool) -> None:
        sig = _news(status)
        if sig != self._last_sig or time.monotonic() - self._last_sent >= self._interval_s:
            self._deliver(status.model_copy(deep=True) if copy else status)
            self._last_sig, self._last_sent = sig, time.monotonic()


def _news(status: DeviceStatus) -> str:
    """The signature of what is news: a first delivery is, each later one is not."""
    if status.last_delivery_at is not None:
        status = status.model_copy(update={"last_delivery_at": _DELIVERED})
    return status_signature(status)


_DELIVERED = datetime(2000, 1, 1, tzinfo=UTC)  # "has delivered", whenever it was
