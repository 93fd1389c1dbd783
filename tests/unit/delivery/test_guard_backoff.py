"""The engine's last line of defence: a delivery task that dies from an exception it does not
handle is restarted after a capped exponential back-off, and the failure shows in `last_error`
(issue #19 item 8: it used to restart every `retry_initial_s`, silently)."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import pytest

from edge_recorder.config.model import Config
from edge_recorder.delivery.context import DeliveryContext
from edge_recorder.delivery.engine import DeliveryEngine, _guarded
from edge_recorder.spool import Spool
from edge_recorder.uplinks.fakes import FakeService, fake_uplinks
from tests.support.helpers import async_poll_until

INITIAL_S, MAX_S = 0.05, 0.4
RESTART_LOG = "delivery task restarts after a back-off"


@pytest.fixture
def config(tmp_path: Path) -> Config:
    return Config.model_validate(
        {
            "spool": {
                "dir": str(tmp_path / "spool"),
                "key_file": str(tmp_path / "spool.key"),
                "reserve_free_bytes": 0,
            },
            "uplink": {"retry_initial_s": INITIAL_S, "retry_max_s": MAX_S},
        }
    )


@pytest.fixture
def ctx(config: Config) -> Iterator[DeliveryContext]:
    spool = Spool.open(config.spool, environ={})
    # rand = 1: "equal jitter" at its top, so every back-off is exactly its step.
    engine = DeliveryEngine(config, spool, uplinks=fake_uplinks(FakeService()), rand=lambda: 1.0)
    yield engine.context
    spool.close()


@contextlib.asynccontextmanager
async def guarding(
    ctx: DeliveryContext, loop: Callable[[DeliveryContext], Awaitable[None]]
) -> AsyncIterator[None]:
    task = asyncio.create_task(_guarded("live", loop, ctx))
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def logged_delays(caplog: pytest.LogCaptureFixture) -> list[float]:
    return [
        r.fields["delay_s"]  # type: ignore[attr-defined]
        for r in caplog.records
        if r.getMessage() == RESTART_LOG
    ]


async def test_a_crashing_task_restarts_after_a_growing_capped_back_off(
    ctx: DeliveryContext, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="edge_recorder")
    starts: list[float] = []

    async def crashing(_: DeliveryContext) -> None:
        starts.append(time.monotonic())
        raise RuntimeError("boom")  # a failure class no task handles

    async with guarding(ctx, crashing):
        await async_poll_until(lambda: len(starts) >= 6, what="six starts")
    # Doubling from retry_initial_s, capped at retry_max_s, and really waited for (a sleep
    # never returns early) ...
    gaps = [b - a for a, b in itertools.pairwise(starts)][:5]
    for gap, step in zip(gaps, (0.05, 0.1, 0.2, 0.4, 0.4), strict=True):
        assert gap >= step * 0.95, gaps
    # ... and visible in status.
    error = ctx.link.last_error
    assert error is not None
    assert error.code == "delivery_task_failed"
    assert error.message == "live task failed: RuntimeError: boom"
    assert logged_delays(caplog)[:5] == [0.05, 0.1, 0.2, 0.4, 0.4]


async def test_a_task_that_ran_a_while_before_failing_starts_the_back_off_again(
    ctx: DeliveryContext, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="edge_recorder")
    runs: list[float] = []

    async def flaky(_: DeliveryContext) -> None:
        runs.append(time.monotonic())
        if len(runs) == 4:  # this run works for longer than the back-off ceiling
            await asyncio.sleep(MAX_S * 1.5)  # the task "working", not synchronisation
        raise OSError("disk hiccup")

    async with guarding(ctx, flaky):
        await async_poll_until(lambda: len(runs) >= 6, what="six runs")
    assert logged_delays(caplog)[:5] == [0.05, 0.1, 0.2, 0.05, 0.1]
    error = ctx.link.last_error
    assert error is not None and error.message == "live task failed: OSError: disk hiccup"
