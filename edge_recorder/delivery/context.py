"""What the delivery tasks (live, backlog, tap) share: the context and two wait helpers.

Only touched from the event loop thread. The engine (`engine.py`) builds one `DeliveryContext`
and runs the tasks over it; each task module imports this one, never the engine.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Callable
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
from edge_recorder.spool import Spool
from edge_recorder.status import ErrorInfo
from edge_recorder.support.logs import get_logger
from edge_recorder.uplinks.base import (
    NO_ANSWER,
    ErrorKind,
    LiveStreamer,
    ServiceConfiguration,
    SessionIdentity,
    UplinkError,
)
from edge_recorder.uplinks.bundle import Uplinks

log = get_logger(__name__)

CONFIG_REFRESH_S = 3600.0  # RetrieveConfiguration is re-read this often while online
REDIAL_AFTER = 2  # consecutive live-transport failures before a fresh connection
_LINK_KINDS = (ErrorKind.UNAVAILABLE, ErrorKind.SERVER, ErrorKind.PROTOCOL)
IDLE_POLL_S = 2.0  # upper bound on any idle wait, so `spool retry` requests are seen soon


@dataclass
class WorkSets:
    """Which recordings and encounters a task is working on, so the tasks never collide."""

    claimed: set[str] = field(default_factory=set)  # recordings a task is working on
    ehr_contexts: dict[str, dict[str, Any] | None] = field(default_factory=dict)  # by encounter
    resync: set[str] = field(default_factory=set)  # reopen these at offset 0 (offsets disagree)
    rest_sessions: set[str] = field(default_factory=set)  # PUT /ambient-sessions done
    tapped: set[str] = field(default_factory=set)  # recordings the live tap has streamed from
    tap_active: set[str] = field(default_factory=set)  # the live tap is streaming these now
    # live streams whose open the server never answered, and whether it answered anything
    unconfirmed: dict[str, bool] = field(default_factory=dict)
    rest_only: set[str] = field(default_factory=set)  # live gave up: REST once closed


@dataclass
class Wakeups:
    """The events that wake each task (new audio, a closed recording, the network back)."""

    live_wake: asyncio.Event = field(default_factory=asyncio.Event)
    backlog_wake: asyncio.Event = field(default_factory=asyncio.Event)
    live_quiet: asyncio.Event = field(default_factory=asyncio.Event)  # live needs no bandwidth
    tap_wake: asyncio.Event = field(default_factory=asyncio.Event)
    link_up: asyncio.Event = field(default_factory=asyncio.Event)  # offline → online

    def __post_init__(self) -> None:
        self.live_quiet.set()


@dataclass
class LinkHealth:
    """What the service and the link to it look like now: what status and the LEDs show."""

    online: bool = False
    refusing: bool = False
    last_delivery_at: datetime | None = None
    # `error` is the problem delivery has now (cleared by the next successful call);
    # `last_error` the last one seen, kept with its time for the operator's history.
    error: ErrorInfo | None = None
    last_error: ErrorInfo | None = None
    processing_refs: tuple[tuple[str, str], ...] = ()
    service: ServiceConfiguration | None = None
    service_at: float | None = None
    link_failures: int = 0  # consecutive transport failures on the live connection
    live_silent: bool = False  # a live stream got no answer at all: REST carries the audio
    redial: bool = False  # drop the live connection before the next call

    def report(self, code: str, message: str) -> None:
        """A problem now: both the current error and the last one seen."""
        self.error = self.last_error = ErrorInfo(
            code=code, message=message[:300], at=datetime.now(UTC)
        )


@dataclass
class DeliveryContext:
    """What the live, backlog and tap tasks share; only touched from the event loop thread:
    the engine's inputs, and its state split by concern (`work`, `wakeups`, `link`)."""

    config: Config
    spool: Spool
    uplinks: Uplinks
    clock: Callable[[], float]
    state: DeliveryState
    rand: Callable[[], float] = random.random
    work: WorkSets = field(default_factory=WorkSets)
    wakeups: Wakeups = field(default_factory=Wakeups)
    link: LinkHealth = field(default_factory=LinkHealth)

    # ---- identity and sizes ----------------------------------------------------------------
    def identity(self, correlation_id: str) -> SessionIdentity:
        """The service's identity for an encounter: the configured one, with the practitioner
        and EHR instance of the encounter's start context when it came with one (kept sealed
        in the spool, so a restart or a long outage does not lose it)."""
        base = self.uplinks.identity(correlation_id)
        if correlation_id not in self.work.ehr_contexts:
            self.work.ehr_contexts[correlation_id] = self.spool.encounter_context(correlation_id)
        ehr = self.work.ehr_contexts[correlation_id]
        if not ehr:
            return base
        return replace(
            base,
            external_user_id=str(ehr.get("external_user_id") or "") or base.external_user_id,
            ehr_instance_id=str(ehr.get("ehr_instance_id") or "") or base.ehr_instance_id,
        )

    @property
    def max_chunk(self) -> int:
        limit = self.link.service.max_chunk_bytes if self.link.service else None
        return min(limit or DEFAULT_MAX_CHUNK_BYTES, 1024 * 1024)

    async def refresh_service_config(self, correlation_id: str, force: bool = False) -> None:
        """RetrieveConfiguration when stale (or forced): also the "are we online?" probe."""
        now = time.monotonic()
        fresh = self.link.service_at is not None and now - self.link.service_at < CONFIG_REFRESH_S
        if fresh and not force:
            return
        live = await self.live_transport()
        self.link.service = await live.retrieve_configuration(self.identity(correlation_id))
        self.link.service_at = now
        self.succeeded()

    async def live_transport(self) -> LiveStreamer:
        """The live streamer, on a fresh connection after repeated transport failures: a
        connection that survived a dead spell can be unusable yet never closed (seen with a
        black-holed TCP link that came back), and only a new one recovers."""
        if self.link.redial:
            self.link.redial = False
            log.info("dropping the live connection; the next call dials a new one")
            await self.uplinks.live.aclose()
        return self.uplinks.live

    # ---- outcome book-keeping --------------------------------------------------------------
    def succeeded(self, delivered: bool = False, live_link: bool = True) -> None:
        """A call worked; only one on the live connection proves that connection healthy (a
        REST upload between failing gRPC calls must not stop the redial count)."""
        if not self.link.online:
            self.wakeups.link_up.set()  # the backlog's back-off ends: the network is back
        self.link.online, self.link.refusing = True, False
        self.link.error = None  # the link works again; `last_error` keeps what happened
        if live_link:
            self.link.link_failures = 0
        if delivered:
            self.link.last_delivery_at = datetime.now(UTC)

    def failed(self, error: UplinkError, decision: Decision, **where: Any) -> None:
        if error.kind in (ErrorKind.UNAVAILABLE, ErrorKind.AUTH, ErrorKind.FORBIDDEN):
            self.link.online = False
        if error.transport in ("grpc", "websocket", "http2") and error.kind in _LINK_KINDS:
            self.link.link_failures += 1
            if self.link.link_failures >= REDIAL_AFTER:
                self.link.redial, self.link.link_failures = True, 0
        self.link.refusing = decision.refusing
        self.link.report(f"delivery_{error.kind.value}", decision.reason)
        level = log.warning if decision.alert else log.info
        level("delivery failed", action=decision.action.value, reason=decision.reason, **where)

    def quarantine(self, recording_id: str, reason: str) -> None:
        self.spool.quarantine(recording_id, reason)
        self.link.report("delivery_quarantined", reason)

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
        unconfirmed = recording_id in self.work.unconfirmed
        if phase in ("live", "resume") and (unconfirmed or error.status == NO_ANSWER):
            answered = self.work.unconfirmed.pop(recording_id, False)
            self._fall_back_to_rest(recording_id, error, answered=answered)
            return None
        if decision.action is Action.QUARANTINE:
            self.quarantine(recording_id, decision.reason)
            return None
        if decision.action is Action.STORE_FORWARD and (
            phase == "resume" or recording_id not in self.work.resync
        ):
            self.spool.reset_confirmed(recording_id)
            self.work.resync.add(recording_id)  # a live (open) recording is restarted from byte 0
            if phase == "resume":
                self.state.clear_live(recording_id)  # a closed one goes through REST
            return None
        if decision.action is Action.RESYNC and recording_id not in self.work.resync:
            self.work.resync.add(recording_id)
            return None
        attempts = self.spool.recording(recording_id).attempts + 1
        delay = self.backoff(attempts, error, decision)
        self.spool.note_failure(recording_id, decision.reason, self.clock() + delay)
        return delay

    def _fall_back_to_rest(self, recording_id: str, error: UplinkError, *, answered: bool) -> None:
        """A live stream broke that cannot be resumed: the server never answered its open
        (so never said what it holds), or answered nothing at all. The recording is no longer
        streamed; once closed it goes through REST store-and-forward, whose finalizeUpload
        confirms every byte. A silent service is an alarm; a merely unconfirmed open is not."""
        self.work.rest_only.add(recording_id)
        self.state.clear_live(recording_id)  # closed, it goes through REST (also after a restart)
        self.spool.reset_confirmed(recording_id)
        if answered:
            log.info(
                "live stream broke and the service never confirmed its open; the recording "
                "goes through REST store-and-forward when it closes",
                recording_id=recording_id,
            )
            return
        self.link.live_silent = True
        reason = (
            f"the live service answered nothing ({str(error)[:120]}); the recording goes "
            "through REST store-and-forward when it closes"
        )
        self.link.report("delivery_live_silent", reason)
        log.warning(
            "live delivery silent; switching to store-and-forward", recording_id=recording_id
        )

    def live_answered(self) -> None:
        """A live stream got an answer: live delivery works (again)."""
        if self.link.live_silent:
            self.link.live_silent = False
            log.info("live delivery answered again")

    def wake(self) -> None:
        self.wakeups.live_wake.set()
        self.wakeups.backlog_wake.set()
        self.wakeups.tap_wake.set()


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
