"""The loop side of an idle daemon (issue #24): no Tick without a timer, one status build
per health pass. (Daemon tests live under tests/unit/app; these sit with the other idle
tests of this issue.)"""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import SimpleNamespace

import pytest

from edge_recorder.app import daemon as daemon_module
from edge_recorder.app.daemon import Daemon
from edge_recorder.encounter import events as ev
from edge_recorder.status import DeviceStatus
from tests.integration.spool.test_disk_full import _device


class Controller:
    def __init__(self) -> None:
        self.deadline: float | None = None
        self.asked = 0
        self.enough = asyncio.Event()

    def next_deadline(self) -> float | None:
        self.asked += 1
        if self.asked >= 20:
            self.enough.set()
        return self.deadline


async def run_ticker(controller: Controller) -> list[ev.Event]:
    sent: list[ev.Event] = []
    recorder = SimpleNamespace(controller=controller, dispatch=sent.append)
    task = asyncio.create_task(Daemon._ticker(SimpleNamespace(recorder=recorder)))  # type: ignore[arg-type]
    await asyncio.wait_for(controller.enough.wait(), 10)
    task.cancel()
    return sent


async def test_no_tick_is_sent_while_no_timer_is_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(daemon_module, "TICK_MAX_S", 0.001)
    idle = Controller()
    assert await run_ticker(idle) == []  # looked 20 times, sent nothing
    timed = Controller()
    timed.deadline = 0.0  # due long ago
    sent = await run_ticker(timed)
    assert sent and all(isinstance(e, ev.Tick) for e in sent)


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
