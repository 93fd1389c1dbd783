"""The delivery engine: everything in the spool reaches the service, exactly once and in order.

Two tasks share one context:
- live (`live.py`): the recording being captured streams over gRPC RecordAmbient from
  the spool as it is written; after a break it reopens the same recording at the server's
  confirmed offset and first drains what piled up, in big messages, then tails capture again;
- backlog (`backlog.py`): closed recordings not yet delivered, oldest encounter
  first (finished on the live transport if the service already knows them, else REST
  storeChunk + finalizeUpload with offset-derived chunk ids), then StartProcessing once per
  encounter and `spool.mark_processing_started`, the only step that lets the spool reclaim
  space. The backlog yields to the live task whenever live has catching up to do.
Nothing is deleted here: the spool only drops audio the service confirmed and started
processing. Service and network errors never escape `run()`; they become back-off (persisted
in the spool ledger), quarantine with a reason, or a switch to REST, per `policy`.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from edge_recorder.config.model import Config
from edge_recorder.delivery.backlog import backlog_loop
from edge_recorder.delivery.context import DeliveryContext, raise_if_cancelling
from edge_recorder.delivery.live import live_loop
from edge_recorder.delivery.policy import backoff_s
from edge_recorder.delivery.state import DeliveryState
from edge_recorder.delivery.tap import tap_loop
from edge_recorder.spool import Spool, SpoolError
from edge_recorder.status import ErrorInfo
from edge_recorder.support.logs import get_logger, redact_text
from edge_recorder.uplinks.base import (
    UplinkError,
)
from edge_recorder.uplinks.bundle import Uplinks
from edge_recorder.uplinks.registry import build_uplinks

log = get_logger(__name__)


@dataclass(frozen=True)
class DeliverySnapshot:
    """What status/MQTT/LEDs show about delivery (no patient data, no tokens)."""

    online: bool
    last_delivery_at: datetime | None
    last_error: ErrorInfo | None  # the last problem seen, kept (with its time) after recovery
    refusing: bool  # the service refuses this device (403 / allow list / credentials)
    service_limits: tuple[float, float] | None  # (max_duration_s, warn_before_s), cached
    service: str = "aas"  # uplink.service
    processing_refs: tuple[tuple[str, str], ...] = ()  # ids the service returned (no text)
    live_silent: bool = False  # the live service answered nothing: REST carries the audio
    error: ErrorInfo | None = None  # the problem delivery has now; None once a call works
    disabled: bool = False  # the config cannot deliver (no endpoint, no ids): audio only piles up

    @classmethod
    def unknown(cls) -> DeliverySnapshot:
        """What status shows when the engine cannot say (offline, nothing known)."""
        return cls(False, None, None, False, None)


class DeliveryEngine:
    """Runs the live and backlog tasks over one spool; see the module docstring."""

    def __init__(
        self,
        config: Config,
        spool: Spool,
        *,
        uplinks: Uplinks | None = None,
        clock: Callable[[], float] = time.time,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self._config_error: str | None = None
        state = DeliveryState(spool.dir)
        if uplinks is None:
            try:
                uplinks = build_uplinks(config, state)
            except (ValueError, OSError) as exc:  # missing endpoint/secret: report, do not crash
                self._config_error = str(exc)
        self._ctx = DeliveryContext(
            config=config,
            spool=spool,
            uplinks=uplinks,  # type: ignore[arg-type]  # None only with _config_error set
            clock=clock,
            state=state,
            rand=rand,
        )
        self._ctx.state.prune(r.id for r in spool.recordings())
        if self._config_error is None:
            try:
                self._ctx.identity("probe")
            except ValueError as exc:
                self._config_error = str(exc)
        if self._config_error is not None:  # shown from the start, not only once run() runs
            self._ctx.link.report("delivery_config", self._config_error)

    @property
    def context(self) -> DeliveryContext:
        return self._ctx

    async def run(self) -> None:
        """Deliver until cancelled; service, network and spool errors never escape."""
        ctx = self._ctx
        if self._config_error is not None:
            log.error("delivery disabled: configuration incomplete", reason=self._config_error)
            await asyncio.Event().wait()  # until cancelled; the audio stays in the spool
        async with asyncio.TaskGroup() as group:
            group.create_task(_guarded("live", live_loop, ctx))
            group.create_task(_guarded("backlog", backlog_loop, ctx))
            if ctx.uplinks.tap is not None:
                group.create_task(_guarded("tap", tap_loop, ctx))

    def wake(self) -> None:
        """New audio, a recording closed, an encounter ended: look again now."""
        self._ctx.wake()

    def snapshot(self) -> DeliverySnapshot:
        ctx = self._ctx
        limits = None
        if ctx.link.service and ctx.link.service.max_recording_duration_s:
            warn = ctx.link.service.warn_before_s
            limits = (
                float(ctx.link.service.max_recording_duration_s),
                float(warn if warn is not None else ctx.uplinks.warn_before_s),
            )
        return DeliverySnapshot(
            online=ctx.link.online,
            last_delivery_at=ctx.link.last_delivery_at,
            last_error=ctx.link.last_error,
            refusing=ctx.link.refusing,
            service_limits=limits,
            service=ctx.config.uplink.service,
            processing_refs=ctx.link.processing_refs,
            live_silent=ctx.link.live_silent,
            error=ctx.link.error,
            disabled=self._config_error is not None,
        )

    async def aclose(self) -> None:
        if self._ctx.uplinks is not None:
            await self._ctx.uplinks.aclose()


async def _guarded(
    name: str, loop: Callable[[DeliveryContext], Awaitable[None]], ctx: DeliveryContext
) -> None:
    """Keep a delivery task alive through anything but cancellation.

    A failure the task does not handle itself (a bug, or a failure class nobody foresaw) must
    neither stop delivery for good nor become a tight restart loop that hammers the service
    and leaves the operator blind (seen: a non-UTF-8 token answer restarted the live task
    every 0.5 s with an empty `last_error`). So it is logged, shown as `last_error` (status,
    MQTT), and the task starts over after the same capped, jittered exponential back-off as
    any retry (`uplink.retry_initial_s` doubling up to `uplink.retry_max_s`). A task that ran
    longer than `retry_max_s` before failing starts again from the first step."""
    up = ctx.config.uplink
    failures = 0
    while True:
        raise_if_cancelling()
        started = time.monotonic()
        try:
            await loop(ctx)
            failure: Exception | None = None
        except (SpoolError, UplinkError, OSError, ValueError) as exc:
            failure = exc
            log.error("delivery task error; restarting it", task=name, error=str(exc))
        except Exception as exc:  # last line of defence, logged loudly
            failure = exc
            log.exception("delivery task crashed; restarting it", task=name, error=repr(exc))
        if failure is None:  # the loops never return; should one, it starts over
            failures, delay = 0, up.retry_initial_s
        else:
            if time.monotonic() - started > up.retry_max_s:
                failures = 0  # it had been working: not part of a crash loop
            failures += 1
            ctx.link.error = ctx.link.last_error = task_error(name, failure)
            delay = backoff_s(failures, up.retry_initial_s, up.retry_max_s, rand=ctx.rand)
            log.info("delivery task restarts after a back-off", task=name, delay_s=round(delay, 2))
        await asyncio.sleep(delay)  # the back-off itself


def task_error(name: str, failure: Exception) -> ErrorInfo:
    """`last_error` for a task that died: an `UplinkError` as the tasks report one, anything
    else by task and exception type (its text is redacted: it never carries audio, and the
    uplinks keep tokens and patient context out of their messages)."""
    if isinstance(failure, UplinkError):
        code, text = f"delivery_{failure.kind.value}", str(failure)
    else:
        code = "delivery_task_failed"
        detail = redact_text(str(failure))
        text = f"{name} task failed: {type(failure).__name__}" + (f": {detail}" if detail else "")
    return ErrorInfo(code=code, message=text[:300], at=datetime.now(UTC))
