"""The delivery engine: everything in the spool reaches the service, exactly once and in order.

Two tasks share one context:
- live (`delivery_live.py`): the recording being captured streams over gRPC RecordAmbient from
  the spool as it is written; after a break it reopens the same recording at the server's
  confirmed offset and first drains what piled up, in big messages, then tails capture again;
- backlog (`delivery_backlog.py`): closed recordings not yet delivered, oldest encounter
  first (finished on the live transport if the service already knows them, else REST
  storeChunk + finalizeUpload with offset-derived chunk ids), then StartProcessing once per
  encounter and `spool.mark_processing_started`, the only step that lets the spool reclaim
  space. The backlog yields to the live task whenever live has catching up to do.
Nothing is deleted here: the spool only drops audio the service confirmed and started
processing. Service and network errors never escape `run()`; they become back-off (persisted
in the spool ledger), quarantine with a reason, or a switch to REST, per `delivery_policy`.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from edge_recorder.config.model import Config
from edge_recorder.delivery.policy import (
    DEFAULT_MAX_CHUNK_BYTES,
    Action,
    Decision,
    Phase,
    backoff_s,
    decide,
)
from edge_recorder.delivery.state import DeliveryState
from edge_recorder.spool import Spool, SpoolError
from edge_recorder.status import ErrorInfo
from edge_recorder.support.logs import get_logger
from edge_recorder.uplinks.base import (
    ErrorKind,
    LiveStreamer,
    ServiceConfiguration,
    SessionIdentity,
    UplinkError,
)
from edge_recorder.uplinks.registry import Uplinks, build_uplinks

log = get_logger(__name__)

CONFIG_REFRESH_S = 3600.0  # RetrieveConfiguration is re-read this often while online
REDIAL_AFTER = 2  # consecutive live-transport failures before a fresh connection
_LINK_KINDS = (ErrorKind.UNAVAILABLE, ErrorKind.SERVER, ErrorKind.PROTOCOL)
IDLE_POLL_S = 2.0  # upper bound on any idle wait, so `spool retry` requests are seen soon


@dataclass(frozen=True)
class DeliverySnapshot:
    """What status/MQTT/LEDs show about delivery (no patient data, no tokens)."""

    online: bool
    last_delivery_at: datetime | None
    last_error: ErrorInfo | None
    refusing: bool  # the service refuses this device (403 / allow list / credentials)
    service_limits: tuple[float, float] | None  # (max_duration_s, warn_before_s), cached
    service: str = "aas"  # uplink.service
    processing_refs: tuple[tuple[str, str], ...] = ()  # ids the service returned (no text)


@dataclass
class DeliveryContext:
    """State the live and backlog tasks share; only touched from the event loop thread."""

    config: Config
    spool: Spool
    uplinks: Uplinks
    clock: Callable[[], float]
    state: DeliveryState
    rand: Callable[[], float] = random.random
    claimed: set[str] = field(default_factory=set)  # recordings a task is working on
    ehr_contexts: dict[str, dict[str, Any] | None] = field(default_factory=dict)  # by encounter
    resync: set[str] = field(default_factory=set)  # reopen these at offset 0 (offsets disagree)
    rest_sessions: set[str] = field(default_factory=set)  # PUT /ambient-sessions done
    live_wake: asyncio.Event = field(default_factory=asyncio.Event)
    backlog_wake: asyncio.Event = field(default_factory=asyncio.Event)
    live_quiet: asyncio.Event = field(default_factory=asyncio.Event)  # live needs no bandwidth
    tap_wake: asyncio.Event = field(default_factory=asyncio.Event)
    tapped: set[str] = field(default_factory=set)  # recordings the live tap has streamed from
    tap_active: set[str] = field(default_factory=set)  # the live tap is streaming these now
    online: bool = False
    refusing: bool = False
    last_delivery_at: datetime | None = None
    last_error: ErrorInfo | None = None
    processing_refs: tuple[tuple[str, str], ...] = ()
    service: ServiceConfiguration | None = None
    service_at: float | None = None
    link_failures: int = 0  # consecutive transport failures on the live connection
    redial: bool = False  # drop the live connection before the next call

    def __post_init__(self) -> None:
        self.live_quiet.set()

    # ---- identity and sizes ----------------------------------------------------------------
    def identity(self, correlation_id: str) -> SessionIdentity:
        """The service's identity for an encounter: the configured one, with the practitioner
        and EHR instance of the encounter's start context when it came with one (kept sealed
        in the spool, so a restart or a long outage does not lose it)."""
        base = self.uplinks.identity(correlation_id)
        if correlation_id not in self.ehr_contexts:
            self.ehr_contexts[correlation_id] = self.spool.encounter_context(correlation_id)
        ehr = self.ehr_contexts[correlation_id]
        if not ehr:
            return base
        return replace(
            base,
            external_user_id=str(ehr.get("external_user_id") or "") or base.external_user_id,
            ehr_instance_id=str(ehr.get("ehr_instance_id") or "") or base.ehr_instance_id,
        )

    @property
    def max_chunk(self) -> int:
        limit = self.service.max_chunk_bytes if self.service else None
        return min(limit or DEFAULT_MAX_CHUNK_BYTES, 1024 * 1024)

    async def refresh_service_config(self, correlation_id: str, force: bool = False) -> None:
        """RetrieveConfiguration when stale (or forced): also the "are we online?" probe."""
        now = time.monotonic()
        fresh = self.service_at is not None and now - self.service_at < CONFIG_REFRESH_S
        if fresh and not force:
            return
        live = await self.live_transport()
        self.service = await live.retrieve_configuration(self.identity(correlation_id))
        self.service_at = now
        self.succeeded()

    async def live_transport(self) -> LiveStreamer:
        """The live streamer, on a fresh connection after repeated transport failures: a
        connection that survived a dead spell can be unusable yet never closed (seen with a
        black-holed TCP link that came back), and only a new one recovers."""
        if self.redial:
            self.redial = False
            log.info("dropping the live connection; the next call dials a new one")
            await self.uplinks.live.aclose()
        return self.uplinks.live

    # ---- outcome book-keeping --------------------------------------------------------------
    def succeeded(self, delivered: bool = False, live_link: bool = True) -> None:
        """A call worked; only one on the live connection proves that connection healthy (a
        REST upload between failing gRPC calls must not stop the redial count)."""
        self.online, self.refusing = True, False
        if live_link:
            self.link_failures = 0
        if delivered:
            self.last_delivery_at = datetime.now(UTC)

    def failed(self, error: UplinkError, decision: Decision, **where: Any) -> None:
        if error.kind in (ErrorKind.UNAVAILABLE, ErrorKind.AUTH, ErrorKind.FORBIDDEN):
            self.online = False
        if error.transport in ("grpc", "websocket", "http2") and error.kind in _LINK_KINDS:
            self.link_failures += 1
            if self.link_failures >= REDIAL_AFTER:
                self.redial, self.link_failures = True, 0
        self.refusing = decision.refusing
        self.last_error = ErrorInfo(
            code=f"delivery_{error.kind.value}", message=decision.reason[:300], at=datetime.now(UTC)
        )
        level = log.warning if decision.alert else log.info
        level("delivery failed", action=decision.action.value, reason=decision.reason, **where)

    def quarantine(self, recording_id: str, reason: str) -> None:
        self.spool.quarantine(recording_id, reason)
        self.last_error = ErrorInfo(
            code="delivery_quarantined", message=reason[:300], at=datetime.now(UTC)
        )

    def backoff(self, attempts: int, error: UplinkError, decision: Decision) -> float:
        up = self.config.uplink
        initial = up.retry_max_s if decision.refusing else up.retry_initial_s
        return backoff_s(
            attempts, initial, up.retry_max_s, retry_after_s=error.retry_after_s, rand=self.rand
        )

    def apply(self, recording_id: str, error: UplinkError, phase: Phase) -> float | None:
        """Act on a failed attempt at a recording; returns the back-off delay, or None when
        the next attempt may start at once (switched path or resync)."""
        decision = decide(error, phase)
        self.failed(error, decision, recording_id=recording_id, phase=phase)
        if decision.action is Action.QUARANTINE:
            self.quarantine(recording_id, decision.reason)
            return None
        if decision.action is Action.STORE_FORWARD and (
            phase == "resume" or recording_id not in self.resync
        ):
            self.spool.reset_confirmed(recording_id)
            self.resync.add(recording_id)  # a live (open) recording is restarted from byte 0
            if phase == "resume":
                self.state.clear_live(recording_id)  # a closed one goes through REST
            return None
        if decision.action is Action.RESYNC and recording_id not in self.resync:
            self.resync.add(recording_id)
            return None
        attempts = self.spool.recording(recording_id).attempts + 1
        delay = self.backoff(attempts, error, decision)
        self.spool.note_failure(recording_id, decision.reason, self.clock() + delay)
        return delay

    def wake(self) -> None:
        self.live_wake.set()
        self.backlog_wake.set()
        self.tap_wake.set()


def raise_if_cancelling() -> None:
    """Honour a cancellation some library swallowed (Python 3.11's `asyncio.wait_for` returns
    the result when it completes together with a cancel): the engine must stop when told."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


async def wait_event(event: asyncio.Event, timeout_s: float) -> None:
    """Wait for `event` (then clear it) or `timeout_s`, whichever comes first."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(max(timeout_s, 0.0)):
            await event.wait()
    event.clear()


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

    @property
    def context(self) -> DeliveryContext:
        return self._ctx

    async def run(self) -> None:
        """Deliver until cancelled; service, network and spool errors never escape."""
        from edge_recorder.delivery.backlog import backlog_loop
        from edge_recorder.delivery.live import live_loop
        from edge_recorder.delivery.tap import tap_loop

        ctx = self._ctx
        if self._config_error is not None:
            ctx.last_error = ErrorInfo(
                code="delivery_config", message=self._config_error, at=datetime.now(UTC)
            )
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
        if ctx.service and ctx.service.max_recording_duration_s:
            warn = ctx.service.warn_before_s
            limits = (
                float(ctx.service.max_recording_duration_s),
                float(warn if warn is not None else ctx.config.aas.warn_before_s),
            )
        return DeliverySnapshot(
            online=ctx.online,
            last_delivery_at=ctx.last_delivery_at,
            last_error=ctx.last_error,
            refusing=ctx.refusing,
            service_limits=limits,
            service=ctx.config.uplink.service,
            processing_refs=ctx.processing_refs,
        )

    async def aclose(self) -> None:
        if self._ctx.uplinks is not None:
            await self._ctx.uplinks.aclose()


async def _guarded(
    name: str, loop: Callable[[DeliveryContext], Awaitable[None]], ctx: DeliveryContext
) -> None:
    """Keep a delivery task alive through anything but cancellation (a bug must not stop
    delivery for good: it is logged, then the task starts over after a pause)."""
    while True:
        raise_if_cancelling()
        try:
            await loop(ctx)
        except (SpoolError, UplinkError, OSError, ValueError) as exc:
            log.error("delivery task error; restarting it", task=name, error=str(exc))
        except Exception as exc:  # last line of defence, logged loudly
            log.exception("delivery task crashed; restarting it", task=name, error=repr(exc))
        await asyncio.sleep(ctx.config.uplink.retry_initial_s)  # pause before restarting
