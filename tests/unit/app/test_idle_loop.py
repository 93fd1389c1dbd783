"""The loop side of an idle daemon (issue #24): no ticker wake-up without a timer, one
status build and no thread hand-off per idle health pass. (Daemon tests live under
tests/unit/app; these sit with the other idle tests of this issue.)"""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import SimpleNamespace

import pytest

from edge_recorder.app import periodic
from edge_recorder.app.periodic import PeriodicWork
from edge_recorder.encounter import events as ev
from edge_recorder.status import DeviceStatus
from tests.integration.spool.test_disk_full import _device
from tests.support.helpers import async_poll_until


class Controller:
    def __init__(self) -> None:
        self.deadline: float | None = None
        self.asked = 0
        self.looked = asyncio.Event()

    def next_deadline(self) -> float | None:
        self.asked += 1
        self.looked.set()
        return self.deadline


def _no_status_changed(_status: DeviceStatus) -> None:
    return None


def ticker_host(controller: Controller, sent: list[ev.Event]) -> SimpleNamespace:
    recorder = SimpleNamespace(controller=controller, dispatch=sent.append)
    return SimpleNamespace(
        recorder=recorder, _timers_changed=None, _status_changed=_no_status_changed
    )


async def test_with_no_timer_set_the_ticker_sleeps_until_a_dispatch(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(periodic, "TICK_MAX_S", 0.001)  # a poll would look hundreds of times
    idle, sent = Controller(), []  # type: ignore[var-annotated]
    host = ticker_host(idle, sent)
    task = asyncio.create_task(PeriodicWork._ticker(host))  # type: ignore[arg-type]
    try:
        await asyncio.wait_for(idle.looked.wait(), 10)
        for _ in range(50):  # let the loop run: nothing may wake the ticker
            await asyncio.sleep(0)
        assert idle.asked == 1 and sent == []
        idle.deadline, idle.looked = 0.0, asyncio.Event()  # a dispatch set a timer (long due)
        PeriodicWork._dispatched(host, DeviceStatus())  # type: ignore[arg-type]
        await asyncio.wait_for(idle.looked.wait(), 10)
        await async_poll_until(lambda: len(sent) >= 3, what="ticks while the timer is due")
        assert all(isinstance(e, ev.Tick) for e in sent)
    finally:
        task.cancel()


async def test_an_idle_health_pass_hands_nothing_to_a_thread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No writer open, nothing unsaved, no request: the sync has nothing to do, so no worker
    thread hand-off (two wake-ups a second); a `spool retry` request goes to the thread and
    wakes delivery."""
    daemon, spool, _, _ = await _device(tmp_path)
    hops: list[object] = []

    async def to_thread(func: object, *args: object) -> None:
        hops.append(func)

    monkeypatch.setattr(periodic.asyncio, "to_thread", to_thread)
    try:
        await daemon._sync_spool()
        assert hops == [] and daemon.delivery.wakes == 0  # type: ignore[attr-defined]
        (spool.dir / "requests" / "1.json").write_text('{"action": "retry"}')
        await daemon._sync_spool()
        assert hops == [spool.sync] and daemon.delivery.wakes == 1  # type: ignore[attr-defined]
    finally:
        spool.close()


async def test_a_health_pass_builds_the_status_once(tmp_path: Path) -> None:
    daemon, spool, _, _ = await _device(tmp_path)
    try:
        built: list[DeviceStatus] = []
        status = daemon.recorder.status

        def counted() -> DeviceStatus:
            built.append(status())
            return built[-1]

        reported: list[DeviceStatus] = []
        daemon.recorder.status = counted  # type: ignore[method-assign]
        daemon._status_changed = reported.append  # type: ignore[method-assign, assignment]
        daemon._check_health()  # nothing changed since the last pass
        assert len(built) == 1 and reported == built  # the one status is the news
    finally:
        spool.close()
