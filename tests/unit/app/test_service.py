"""Pure logic of edge_recorder.app.service: watchdog decisions on a fake clock, message shapes,
and the signal wiring with in-process signals."""

from __future__ import annotations

import asyncio
import os
import signal

import pytest

from edge_recorder.app.service import (
    Heartbeat,
    RecordingNotifier,
    ServiceNotifier,
    WatchdogSupervisor,
    install_signal_handlers,
    watchdog_interval,
)
from tests.support.helpers import async_poll_until


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"WATCHDOG_USEC": "20000000"}, 20.0),
        ({"WATCHDOG_USEC": "20000000", "WATCHDOG_PID": "4242"}, 20.0),
        ({"WATCHDOG_USEC": "20000000", "WATCHDOG_PID": "4243"}, None),  # meant for another pid
        ({"WATCHDOG_USEC": "20000000", "WATCHDOG_PID": "x"}, None),
        ({"WATCHDOG_USEC": "0"}, None),
        ({"WATCHDOG_USEC": "-5"}, None),
        ({"WATCHDOG_USEC": "soon"}, None),
        ({}, None),
    ],
)
def test_watchdog_interval(env: dict[str, str], expected: float | None) -> None:
    assert watchdog_interval(env, pid=4242) == expected


def make(timeout_s: float | None = 20.0) -> tuple[WatchdogSupervisor, RecordingNotifier, FakeClock]:
    clock = FakeClock()
    recorder = RecordingNotifier()
    return WatchdogSupervisor(ServiceNotifier(recorder, clock), timeout_s, clock), recorder, clock


def test_pings_only_while_every_heartbeat_is_fresh() -> None:
    supervisor, recorder, clock = make()
    assert supervisor.ping_interval_s == 10.0
    capture = supervisor.register("capture", 5.0)
    mqtt = supervisor.register("mqtt", 30.0)
    assert supervisor.tick() is True

    clock.now += 5.0  # exactly at the limit still counts as fresh
    assert supervisor.tick() is True
    clock.now += 0.1
    assert supervisor.tick() is False
    assert supervisor.stale() == ("capture",)
    capture.beat()
    assert supervisor.tick() is True

    clock.now += 31
    capture.beat()
    assert supervisor.stale() == ("mqtt",)
    mqtt.beat()
    assert supervisor.tick() is True
    assert recorder.messages == [
        "WATCHDOG=1",
        "WATCHDOG=1",
        "STATUS=watchdog withheld: capture not making progress",
        "WATCHDOG=1",
        "WATCHDOG=1",
    ]
    assert (supervisor.pings, supervisor.withheld) == (4, 1)


def test_withheld_status_is_sent_once_per_episode() -> None:
    supervisor, recorder, clock = make()
    supervisor.register("capture", 1.0)
    clock.now += 2
    for _ in range(3):
        assert supervisor.tick() is False
    assert recorder.messages == ["STATUS=watchdog withheld: capture not making progress"]


def test_register_rules() -> None:
    supervisor, _, clock = make()
    beat = supervisor.register("capture", 1.0)
    with pytest.raises(ValueError, match="already registered"):
        supervisor.register("capture", 1.0)
    with pytest.raises(ValueError, match="max_age_s"):
        supervisor.register("x", 0)
    beat.close()
    beat.close()  # twice is harmless
    clock.now += 100
    assert supervisor.stale() == ()
    again = supervisor.register("capture", 1.0)  # a re-opened device registers anew
    assert again.is_fresh()


def test_closing_an_old_heartbeat_does_not_drop_its_successor() -> None:
    supervisor, _, clock = make()
    old = supervisor.register("capture", 1.0)
    old.close()
    new = supervisor.register("capture", 1.0)
    old.close()
    clock.now += 2
    assert supervisor.stale() == ("capture",)
    new.close()


def test_heartbeat_age() -> None:
    clock = FakeClock()
    beat = Heartbeat("loop", 2.0, clock)
    clock.now += 1.5
    assert beat.age() == 1.5 and beat.is_fresh()
    assert not beat.is_fresh(now=clock.now + 1)


async def test_run_returns_at_once_without_a_watchdog() -> None:
    supervisor, recorder, _ = make(timeout_s=None)
    assert not supervisor.enabled
    await asyncio.wait_for(supervisor.run(), timeout=5)
    assert recorder.messages == []


def test_message_shapes() -> None:
    clock = FakeClock()
    recorder = RecordingNotifier()
    notifier = ServiceNotifier(recorder, clock)
    notifier.ready()
    notifier.ready("idle")
    notifier.status("a\r\nb\tc")
    notifier.reloading()
    notifier.stopping()
    notifier.watchdog()
    assert recorder.messages == [
        "READY=1",
        "READY=1\nSTATUS=idle",
        "STATUS=a b c",
        "RELOADING=1\nMONOTONIC_USEC=1000000000\nSTATUS=reloading config",
        "STOPPING=1\nSTATUS=stopping",
        "WATCHDOG=1",
    ]


async def test_signals_drive_stop_and_reload() -> None:
    loop = asyncio.get_running_loop()
    recorder = RecordingNotifier()
    notifier = ServiceNotifier(recorder)
    stopped = asyncio.Event()
    reloaded = asyncio.Event()
    calls: list[str] = []

    async def on_stop() -> None:
        calls.append("stop")
        stopped.set()

    def on_reload() -> None:
        calls.append("reload")
        raise RuntimeError("bad config")  # a failed reload still ends with READY=1

    remove = install_signal_handlers(loop, on_stop, on_reload, notifier)
    original_ready = notifier.ready

    def ready_spy(status: object = None) -> bool:
        result = original_ready()
        reloaded.set()
        return result

    notifier.ready = ready_spy  # type: ignore[method-assign]
    try:
        os.kill(os.getpid(), signal.SIGHUP)
        await asyncio.wait_for(reloaded.wait(), timeout=5)
        os.kill(os.getpid(), signal.SIGTERM)
        await asyncio.wait_for(stopped.wait(), timeout=5)
        os.kill(os.getpid(), signal.SIGTERM)  # a second TERM while stopping: ignored
        os.kill(os.getpid(), signal.SIGHUP)  # and no reload once stopping
        # The loop handles signals in arrival order: once the probe ran, so did both above
        # (and they notify synchronously in the handler, so their messages would be there).
        probe = asyncio.Event()
        loop.add_signal_handler(signal.SIGUSR1, probe.set)
        os.kill(os.getpid(), signal.SIGUSR1)
        await asyncio.wait_for(probe.wait(), timeout=5)
    finally:
        remove()
        loop.remove_signal_handler(signal.SIGUSR1)
    assert calls == ["reload", "stop"]
    assert [m.split("\n")[0] for m in recorder.messages] == ["RELOADING=1", "READY=1", "STOPPING=1"]


async def _signal_and_settle(loop: asyncio.AbstractEventLoop, *signums: int) -> None:
    """Send signals to ourselves and return once the loop has handled all of them."""
    probe = asyncio.Event()
    loop.add_signal_handler(signal.SIGUSR1, probe.set)
    try:
        for signum in signums:
            os.kill(os.getpid(), signum)
        os.kill(os.getpid(), signal.SIGUSR1)
        await asyncio.wait_for(probe.wait(), timeout=5)
    finally:
        loop.remove_signal_handler(signal.SIGUSR1)


async def test_sighups_during_a_reload_coalesce_and_stop_wins() -> None:
    loop = asyncio.get_running_loop()
    recorder = RecordingNotifier()
    started = asyncio.Event()
    gate = asyncio.Event()
    finished = asyncio.Event()
    reloads = 0

    async def on_reload() -> None:
        nonlocal reloads
        reloads += 1
        started.set()
        await gate.wait()
        finished.set()  # the wrapper's READY=1 (or not) follows in the same step

    async def on_stop() -> None:
        return None

    remove = install_signal_handlers(loop, on_stop, on_reload, ServiceNotifier(recorder))
    try:
        await _signal_and_settle(loop, signal.SIGHUP)
        await asyncio.wait_for(started.wait(), timeout=5)
        await _signal_and_settle(loop, signal.SIGHUP, signal.SIGHUP)  # during the reload
        assert reloads == 1
        started.clear()
        gate.set()
        await asyncio.wait_for(started.wait(), timeout=5)  # exactly one more reload
        assert reloads == 2

        gate.clear()
        started.clear()
        await _signal_and_settle(loop, signal.SIGHUP)
        await asyncio.wait_for(started.wait(), timeout=5)
        await _signal_and_settle(loop, signal.SIGTERM)  # stop while reloading
        finished.clear()
        gate.set()
        await asyncio.wait_for(finished.wait(), timeout=5)
    finally:
        remove()
    firsts = [m.split("\n")[0] for m in recorder.messages]
    assert firsts == [
        "RELOADING=1",
        "READY=1",
        "RELOADING=1",
        "READY=1",
        "RELOADING=1",
        "STOPPING=1",
    ]


async def test_a_sighup_before_ready_sends_nothing() -> None:
    loop = asyncio.get_running_loop()
    recorder = RecordingNotifier()
    is_ready = False
    reloads: list[str] = []

    async def on_stop() -> None:
        return None

    remove = install_signal_handlers(
        loop, on_stop, lambda: reloads.append("reload"), ServiceNotifier(recorder),
        ready=lambda: is_ready,
    )  # fmt: skip
    try:
        await _signal_and_settle(loop, signal.SIGHUP)  # still starting: ignored
        assert (reloads, recorder.messages) == ([], [])
        is_ready = True
        await _signal_and_settle(loop, signal.SIGHUP)
        await async_poll_until(lambda: len(recorder.messages) == 2, 5, "reload finished")
    finally:
        remove()
    assert reloads == ["reload"]
    assert [m.split("\n")[0] for m in recorder.messages] == ["RELOADING=1", "READY=1"]
