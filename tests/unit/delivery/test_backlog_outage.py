"""The backlog while the service cannot be reached (issue #24): one attempt, then a wait for
the live task's probe (bounded by the back-off ceiling) whatever recording was tried, and no
journal record with its fsync per failed attempt."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import pytest

from edge_recorder.config.model import Config
from edge_recorder.delivery import backlog
from edge_recorder.delivery.engine import DeliveryEngine
from edge_recorder.spool import Spool
from edge_recorder.spool.fileops import OsFileOps
from edge_recorder.uplinks.base import ErrorKind, UplinkError
from edge_recorder.uplinks.fakes import FakeService, fake_uplinks
from tests.unit.delivery.test_engine import record


class CountingOps(OsFileOps):
    def __init__(self) -> None:
        self.fsyncs = 0

    def fsync(self, fd: int) -> None:
        self.fsyncs += 1
        super().fsync(fd)


def test_only_a_service_that_never_answered_is_unreachable() -> None:
    assert backlog.unreachable(UplinkError(ErrorKind.UNAVAILABLE, "refused", transport="rest"))
    answered = UplinkError(ErrorKind.UNAVAILABLE, "busy", transport="rest", status=503)
    assert not backlog.unreachable(answered)
    assert not backlog.unreachable(UplinkError(ErrorKind.SERVER, "boom", transport="rest"))


async def test_an_unreachable_service_pauses_the_backlog_not_each_recording(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = Config.model_validate(
        {
            "spool": {"dir": str(tmp_path / "spool"), "key_file": str(tmp_path / "k"),
                      "reserve_free_bytes": 0},
            "uplink": {"retry_initial_s": 1.0, "retry_max_s": 8.0, "live": False},
        }
    )  # fmt: skip
    ops = CountingOps()
    spool = Spool.open(config.spool, environ={}, ops=ops)
    pauses: list[float] = []
    enough = asyncio.Event()
    real_wait = backlog.wait_event

    async def wait_event(event: asyncio.Event, timeout_s: float) -> None:
        if event is not engine.context.wakeups.link_up:
            await real_wait(event, timeout_s)
            return
        pauses.append(timeout_s)  # the pause itself is not waited: the clock stands still
        if len(pauses) >= 6:
            enough.set()
            await asyncio.Event().wait()
        await asyncio.sleep(0)

    monkeypatch.setattr(backlog, "wait_event", wait_event)
    try:
        rids = [record(spool, f"enc-{n}") for n in range(8)]
        for n in range(8):
            spool.end_encounter(f"enc-{n}")
        service = FakeService(offline=True)
        engine = DeliveryEngine(
            config, spool, uplinks=fake_uplinks(service, live_enabled=False), rand=lambda: 0.0
        )
        fsyncs = ops.fsyncs
        task = asyncio.create_task(engine.run())
        try:
            await asyncio.wait_for(enough.wait(), 10)
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await engine.aclose()
        # the back-off ceiling (equal jitter at rand 0: half of 8 s), not each fresh
        # recording's first step (0.5 s) as the pass tries one after another
        assert pauses == [4.0] * 6
        assert ops.fsyncs == fsyncs  # no journal record per failed attempt
        assert spool.recording(rids[0]).attempts == 1  # still counted, saved later
        assert engine.snapshot().error is not None and not engine.snapshot().online
    finally:
        spool.close()
