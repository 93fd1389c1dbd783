"""sd_notify datagrams from the real notifier (systemd-python) on a socket the test binds.

The supervisor runs on the test's event loop exactly as in the daemon; a real thread beats
the "capture" heartbeat and can be made to hang the way a stuck ALSA read would.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import statistics
import threading
from collections.abc import Callable, Iterator

import pytest

from edge_recorder.app.service import ServiceNotifier, SystemdNotifier, WatchdogSupervisor
from edge_recorder.status import BacklogStatus, DeviceStatus

from .conftest import NotifySocket

TIMEOUT_USEC = 200_000  # WatchdogSec=0.2s → a ping every 0.1 s
CAPTURE_MAX_AGE_S = 0.3
WITHHELD = "watchdog withheld: capture not making progress"


@pytest.fixture
def notify_env(notify_socket: NotifySocket, monkeypatch: pytest.MonkeyPatch) -> NotifySocket:
    monkeypatch.setenv("NOTIFY_SOCKET", notify_socket.address)
    monkeypatch.setenv("WATCHDOG_USEC", str(TIMEOUT_USEC))
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    return notify_socket


class CaptureThread:
    """Beats like the capture loop does after each period; `hang()` blocks it mid-"read"."""

    def __init__(self, supervisor: WatchdogSupervisor) -> None:
        self.heartbeat = supervisor.register("capture", CAPTURE_MAX_AGE_S)
        self._hang = threading.Event()
        self._release = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="capture", daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            if self._hang.is_set():
                self._release.wait()  # the stuck driver call
                self._hang.clear()
            self.heartbeat.beat()
            self._stop.wait(0.005)  # one 5 ms "period"

    def start(self) -> None:
        self._thread.start()

    def hang(self) -> None:
        self._release.clear()
        self._hang.set()

    def unhang(self) -> None:
        self._release.set()

    def stop(self) -> None:
        self._stop.set()
        self._release.set()
        self._thread.join(timeout=5)


@pytest.fixture
def supervisor(notify_env: NotifySocket) -> WatchdogSupervisor:
    return WatchdogSupervisor.from_environment(ServiceNotifier())


@pytest.fixture
def capture(supervisor: WatchdogSupervisor) -> Iterator[CaptureThread]:
    thread = CaptureThread(supervisor)
    thread.start()
    yield thread
    thread.stop()


def test_ready_carries_the_status_line(notify_env: NotifySocket) -> None:
    status = DeviceStatus(
        state="recording", recording_seq=2, backlog=BacklogStatus(recordings=3, bytes=4096)
    )
    assert ServiceNotifier().ready(status) is True
    fields = notify_env.wait_for(lambda f: "READY" in f, timeout=5)
    assert fields == {
        "READY": "1",
        "STATUS": "recording; recording #2; backlog 3 rec / 4096 B; offline",
    }


def test_status_is_one_line_and_stopping_and_reloading(notify_env: NotifySocket) -> None:
    notifier = ServiceNotifier()
    notifier.status("line one\nREADY=1 injected")
    fields = notify_env.wait_for(lambda f: "STATUS" in f, timeout=5)
    assert fields == {"STATUS": "line one READY=1 injected"}  # no second assignment

    notifier.reloading()
    fields = notify_env.wait_for(lambda f: "RELOADING" in f, timeout=5)
    assert fields["RELOADING"] == "1"
    assert int(fields["MONOTONIC_USEC"]) > 0

    notifier.stopping("closing recording")
    fields = notify_env.wait_for(lambda f: "STOPPING" in f, timeout=5)
    assert fields == {"STOPPING": "1", "STATUS": "closing recording"}


def test_notifier_is_a_no_op_without_notify_socket(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert ServiceNotifier().ready("idle") is False


def test_a_reader_that_stalls_never_blocks_the_caller(notify_env: NotifySocket) -> None:
    """Nobody reads the socket: sd_notify itself would block once its queue fills up."""
    sender = SystemdNotifier()
    notifier = ServiceNotifier(sender)
    finished = threading.Event()

    def flood() -> None:
        for index in range(500):
            notifier.status(f"line {index}")
        finished.set()

    caller = threading.Thread(target=flood, daemon=True)
    caller.start()
    assert finished.wait(10), "notify() blocked behind a full notify socket"
    # Once systemd reads again, queued messages flow: the first one arrives intact.
    assert notify_env.wait_for(lambda f: "STATUS" in f, timeout=5) == {"STATUS": "line 0"}
    assert sender.dropped > 0  # what did not fit was dropped and counted, not waited for
    assert notifier.flush(5) is True


def _is_ping(fields: dict[str, str]) -> bool:
    return fields.get("WATCHDOG") == "1"


async def _pings(sock: NotifySocket, count: int, timeout: float = 10.0) -> list[float]:
    """Arrival times of the next `count` WATCHDOG=1 datagrams."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    times: list[float] = []
    while len(times) < count:
        left = deadline - loop.time()
        assert left > 0, f"only {len(times)} of {count} pings before the deadline"
        fields = await sock.arecv(left)
        if fields is not None and _is_ping(fields):
            times.append(sock.history[-1][0])
    return times


async def test_pings_at_half_the_timeout_while_heartbeats_are_fresh(
    notify_env: NotifySocket, supervisor: WatchdogSupervisor, capture: CaptureThread
) -> None:
    assert supervisor.ping_interval_s == pytest.approx(0.1)
    task = asyncio.create_task(supervisor.run())
    try:
        times = await _pings(notify_env, 6)
    finally:
        task.cancel()
    gaps = [b - a for a, b in itertools.pairwise(times)]
    # Never faster than the interval; typically right at it, well inside the 0.2 s timeout.
    assert min(gaps) >= 0.09
    assert statistics.median(gaps) < TIMEOUT_USEC / 1e6
    assert supervisor.withheld == 0


async def _until(sock: NotifySocket, predicate: Callable[[dict[str, str]], bool]) -> None:
    """Read (and so drain) datagrams until one matches; fail at a 10 s deadline.

    Reading while waiting matters: a full receive queue would block the sender, i.e. the loop.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10
    while (left := deadline - loop.time()) > 0:
        fields = await sock.arecv(left)
        if fields is not None and predicate(fields):
            return
    raise AssertionError(f"no matching datagram; last: {[f for _, f in sock.history[-5:]]}")


async def test_hung_capture_thread_stops_the_pings_until_it_recovers(
    notify_env: NotifySocket, supervisor: WatchdogSupervisor, capture: CaptureThread
) -> None:
    task = asyncio.create_task(supervisor.run())
    try:
        await _pings(notify_env, 3)

        capture.hang()
        # The supervisor says why it withholds, in the same tick as its first refusal.
        await _until(notify_env, lambda f: f == {"STATUS": WITHHELD})
        assert supervisor.stale() == ("capture",)
        silence = 5 * TIMEOUT_USEC / 1e6  # 2.5 watchdog timeouts: systemd would have killed us
        loop = asyncio.get_running_loop()
        end = loop.time() + silence
        while (left := end - loop.time()) > 0:
            fields = await notify_env.arecv(left)
            assert fields is None or not _is_ping(fields), "pinged while capture was hung"
        assert supervisor.withheld >= 2

        capture.unhang()  # the read returns: progress again, pings resume
        await _pings(notify_env, 2)
    finally:
        task.cancel()


async def test_a_blocked_event_loop_sends_no_pings(
    notify_env: NotifySocket, supervisor: WatchdogSupervisor, capture: CaptureThread
) -> None:
    task = asyncio.create_task(supervisor.run())
    try:
        await _pings(notify_env, 2)
        notify_env.drain()
        # Fault injection, not synchronisation: a synchronous call hogs the loop thread for
        # three ping intervals, the way a blocking call by mistake on the loop would.
        threading.Event().wait(0.3)
        # Nothing may have been sent while the loop was blocked.
        assert [f for f in notify_env.drain() if _is_ping(f)] == []
        await _pings(notify_env, 1)
    finally:
        task.cancel()


async def test_closed_heartbeat_no_longer_blocks_pings(
    notify_env: NotifySocket, supervisor: WatchdogSupervisor
) -> None:
    """A component that stopped on purpose (capture ended) unregisters and is not 'hung'."""
    with supervisor.register("capture", CAPTURE_MAX_AGE_S):
        pass
    assert supervisor.stale(now=1e12) == ()
    task = asyncio.create_task(supervisor.run())
    try:
        await _pings(notify_env, 2)
    finally:
        task.cancel()
