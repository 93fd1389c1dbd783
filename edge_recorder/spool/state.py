"""In-memory state of the recordings this process knows, snapshots for callers, and the
notifier that wakes readers tailing a live recording (threads or asyncio)."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from edge_recorder.spool.ledger import EncounterEntry, LedgerData, RecordingEntry
from edge_recorder.spool.segments import SegmentRef


class OpenWriter(Protocol):
    """The open writer of a recording, as the spool's bookkeeping sees it
    (`writer.RecordingWriter`; typed here so this module need not import the writer)."""

    def close(self, reason: str) -> None: ...

    def flush_if_due(self) -> bool: ...


@dataclass(slots=True)
class SpooledRecording:
    entry: RecordingEntry
    uuid: uuid.UUID
    segments: list[SegmentRef] = field(default_factory=list)
    end: int = 0  # readable length: bytes fully written
    durable: int = 0  # bytes known fsynced (== end for closed recordings)
    writer: OpenWriter | None = None
    # The newest appended bytes as (offset, bytes), replaced whole by the writer (one atomic
    # assignment): the live stream reads what capture just wrote without decrypting it back.
    recent: tuple[int, bytes] = (0, b"")

    @property
    def disk_bytes(self) -> int:
        return sum(s.size for s in self.segments)


@dataclass(frozen=True)
class RecordingInfo:
    """A snapshot of one recording for the delivery engine, status and the CLI."""

    id: str
    encounter: str
    seq: int
    codec: str
    sample_rate: int
    channels: int
    state: str  # open | closed
    live: bool  # being written by this process right now
    length: int  # bytes readable now (final length once closed)
    durable: int
    confirmed: int
    finalized: bool
    delivered: bool
    quarantine: str | None
    attempts: int
    next_attempt_at: float | None
    last_error: str | None
    created_at: float
    closed_at: float | None
    close_reason: str | None
    disk_bytes: int

    @classmethod
    def of(cls, live: SpooledRecording) -> RecordingInfo:
        e = live.entry
        return cls(
            id=e.id, encounter=e.encounter, seq=e.seq, codec=e.codec,
            sample_rate=e.sample_rate, channels=e.channels, state=e.state,
            live=live.writer is not None, length=live.end, durable=live.durable,
            confirmed=e.confirmed, finalized=e.finalized, delivered=e.delivered,
            quarantine=e.quarantine, attempts=e.retry.attempts,
            next_attempt_at=e.retry.next_attempt_at, last_error=e.retry.last_error,
            created_at=e.created_at, closed_at=e.closed_at, close_reason=e.close_reason,
            disk_bytes=live.disk_bytes,
        )  # fmt: skip


@dataclass(frozen=True)
class EncounterInfo:
    id: str
    order: int
    created_at: float
    ended: bool
    processing_started: bool
    recordings: tuple[str, ...]
    all_delivered: bool
    attempts: int
    next_attempt_at: float | None
    last_error: str | None

    @classmethod
    def of(cls, enc: EncounterEntry, ledger: LedgerData) -> EncounterInfo:
        recs = ledger.recordings_of(enc.id)
        return cls(
            id=enc.id, order=enc.order, created_at=enc.created_at, ended=enc.ended,
            processing_started=enc.processing_started, recordings=tuple(r.id for r in recs),
            all_delivered=all(r.delivered and r.quarantine is None for r in recs),
            attempts=enc.retry.attempts, next_attempt_at=enc.retry.next_attempt_at,
            last_error=enc.retry.last_error,
        )  # fmt: skip


class ChangeSignal:
    """Wakes everyone waiting for spool changes; waiters re-check their own condition.

    Writers may run in a capture thread while the delivery engine awaits in an event loop, so
    asyncio futures are resolved through `call_soon_threadsafe`.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._futures: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = []

    def notify(self) -> None:
        with self._cond:
            self._cond.notify_all()
            futures, self._futures = self._futures, []
        for loop, fut in futures:
            with contextlib.suppress(RuntimeError):  # that loop is closed: nobody waits
                loop.call_soon_threadsafe(_resolve, fut)

    def wait_blocking(self, predicate: Callable[[], bool], timeout: float | None) -> bool:
        with self._cond:
            return self._cond.wait_for(predicate, timeout)

    async def wait(self, predicate: Callable[[], bool]) -> None:
        """Return once `predicate()` holds; bound it with `asyncio.timeout()` if needed."""
        loop = asyncio.get_running_loop()
        while True:
            with self._cond:
                if predicate():
                    return
                fut: asyncio.Future[None] = loop.create_future()
                self._futures.append((loop, fut))
            await fut


def _resolve(fut: asyncio.Future[Any]) -> None:
    if not fut.done():
        fut.set_result(None)
