"""The spool's shared state and plumbing: opening (lock, key, recovery), closing, space
accounting for writers, ledger persistence. `store.Spool` adds the public API on top."""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Self

from edge_recorder.config.model import SpoolConfig
from edge_recorder.spool.context import CONTEXT_DIR, EncounterContexts
from edge_recorder.spool.errors import SpoolError, SpoolFull, UnknownRecording, os_error
from edge_recorder.spool.fileops import FileOps, OsFileOps
from edge_recorder.spool.identity import Identities
from edge_recorder.spool.journal import Journal, commit_ledger
from edge_recorder.spool.ledger import EncounterEntry, LedgerData
from edge_recorder.spool.lock import REQUESTS_DIR, SpoolLock, take_requests
from edge_recorder.spool.maintenance import (
    clear_retry,
    delete_segments,
    drop_entry,
)
from edge_recorder.spool.opening import read_spool
from edge_recorder.spool.pending import PendingChanges
from edge_recorder.spool.policy import (
    Refusal,
    SpaceLimits,
    SpaceStatus,
    check_append,
    space_status,
)
from edge_recorder.spool.reader import RecordingReader
from edge_recorder.spool.segments import SEGMENTS_DIR, SegmentRef
from edge_recorder.spool.state import ChangeSignal, SpooledRecording
from edge_recorder.status import BacklogStatus
from edge_recorder.support.logs import get_logger

log = get_logger(__name__)

CONFIRM_SAVE_INTERVAL_S = 5.0  # confirmations are re-sendable; persisting each one is wear


class SpoolCore:
    def __init__(
        self,
        config: SpoolConfig,
        *,
        ops: FileOps,
        clock: Callable[[], float],
        monotonic: Callable[[], float],
    ) -> None:
        self.config = config
        self.dir = config.dir
        self.segments_dir = config.dir / SEGMENTS_DIR
        self.lock = threading.RLock()
        self._ops = ops
        self._clock = clock
        self._monotonic = monotonic
        self._limits = SpaceLimits(
            int(config.max_bytes), config.high_water_ratio, int(config.reserve_free_bytes)
        )
        self._dir_lock = SpoolLock(config.dir)
        self._key = b""
        self._ids: Identities | None = None
        self._context_store: EncounterContexts | None = None
        self.ledger = LedgerData()
        self._live: dict[str, SpooledRecording] = {}
        self._readers: dict[str, tuple[threading.Lock, RecordingReader]] = {}
        self._notifier = ChangeSignal()
        self._used = 0
        self._refused: Refusal | None = None  # the last append refused for space, until back
        self._dirty_since: float | None = None
        self._journal = Journal(config.dir, ops)
        self._pending = PendingChanges()  # changed since the last save (journal or full)
        # backlog(): (oldest created_at, quarantined) of the recordings held, kept until the
        # next ledger save or removal (every change to either goes through one of them)
        self._changes = 0
        self._summary: tuple[int, float | None, int] | None = None
        self._writing: tuple[int, bool] | None = None  # sync_due(): (_changes, a writer open)
        self._open: tuple[int, list[SpooledRecording]] | None = None  # (_changes, still open)

    # ---- opening and closing ---------------------------------------------------------------
    @classmethod
    def open(
        cls,
        config: SpoolConfig,
        *,
        environ: Mapping[str, str] | None = None,
        ops: FileOps | None = None,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> Self:
        """Lock the directory, check the key, repair after a crash; lazy (no audio is read
        except the tail of recordings that were open when the last process died)."""
        spool = cls(config, ops=ops or OsFileOps(), clock=clock, monotonic=monotonic)
        spool.dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        spool.segments_dir.mkdir(mode=0o700, exist_ok=True)
        (spool.dir / REQUESTS_DIR).mkdir(mode=0o700, exist_ok=True)  # owned by the daemon
        spool._dir_lock.acquire()
        try:
            spool._load(environ)
        except BaseException:
            spool._dir_lock.release()
            raise
        return spool

    def _load(self, environ: Mapping[str, str] | None) -> None:
        opened = read_spool(
            self.dir, self.segments_dir, self.config.key_file,
            environ=environ, ops=self._ops, now=self._clock,
        )  # fmt: skip
        self._key, self._ids, self.ledger = opened.key, opened.ids, opened.ledger
        self._live, source = opened.recordings, opened.key_origin
        self._used = sum(live.disk_bytes for live in self._live.values())
        self._contexts().migrate(list(self.ledger.encounters))
        try:
            for live in list(self._live.values()):
                if self.ledger.reclaimable(live.entry):
                    self._reclaim(live)  # a delete interrupted by the last shutdown or crash
            self._save(full=True)  # compaction: a fresh journal for this run
            self.apply_requests()
        except SpoolError as exc:
            # A full or failing disk must not stop the daemon from starting: it has to run
            # to deliver the backlog and free space. The ledger is saved again later.
            self._dirty_since = self._monotonic()
            log.error("spool ledger not saved at open", reason=exc.reason, error=str(exc))
        log.info(
            "spool open",
            recordings_count=len(self._live),
            used_bytes=self._used,
            origin=source,
        )

    def close(self) -> None:
        """Close writers still open (reason "shutdown"), persist, release the directory."""
        with self.lock:
            writers = [lv.writer for lv in self._live.values() if lv.writer is not None]
        for writer in writers:
            with contextlib.suppress(SpoolError):
                writer.close("shutdown")
        try:
            with self.lock:
                for live in list(self._live.values()):
                    self._close_reader(live.entry.id)
                self._save(full=True)  # the next start replays nothing
        finally:
            self._journal.close()
            self._dir_lock.release()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- writer host (called by RecordingWriter) -------------------------------------------
    def _check_append(self, disk_bytes: int) -> None:
        free = self._free()
        try:
            check_append(self._limits, self._used, free, disk_bytes)
        except SpoolFull as exc:
            self._space_refused(exc, free)
            raise

    def _write_failed(self, error: SpoolError) -> None:
        """A write failed (the writer says so before raising): ENOSPC/EDQUOT is remembered,
        so `space()` reports "disk-full" until the disk really has room again."""
        if isinstance(error, SpoolFull):
            self._space_refused(error, self._free())

    def _space_refused(self, error: SpoolFull, free: int) -> None:
        if self._refused is None:
            log.warning("spool space refused", reason=error.reason, free_bytes=free)
        self._refused = Refusal(error.reason, free)

    def _account(
        self, live: SpooledRecording, disk_bytes: int, new_segment: SegmentRef | None
    ) -> None:
        self._used += disk_bytes
        if new_segment is not None:
            live.segments.append(new_segment)
        self._notifier.notify()

    def _writer_closed(self, live: SpooledRecording, reason: str) -> None:
        with self.lock:
            e = live.entry
            e.state, e.length, e.closed_at, e.close_reason = (
                "closed",
                live.end,
                self._clock(),
                reason,
            )
            live.durable = live.end
            live.writer = None
            self._save(recs=[e.id])
        self._notifier.notify()

    # ---- operator requests ------------------------------------------------------------
    def retry(self, target: str | None = None) -> list[str]:
        """Clear back-off and quarantine for one recording/encounter id, or all (None)."""
        with self.lock:
            changed = clear_retry(self.ledger, self._resolve(target))
            self._save(full=True)  # may touch every entry: one snapshot, not a huge record
        self._notifier.notify()
        return changed

    def apply_requests(self) -> int:
        """Apply requests the CLI left while this process held the lock (`spool retry`)."""
        count = 0
        for action, target in take_requests(self.dir):
            if action == "retry":
                with contextlib.suppress(UnknownRecording):
                    self.retry(target)
                    count += 1
        return count

    def note_unreachable(self, recording_id: str, error: str, next_attempt_at: float) -> int:
        """Count an attempt that failed only because the service could not be reached
        (refused, no route); returns attempts. Saved with the next ledger write (`sync`,
        within CONFIRM_SAVE_INTERVAL_S), not journalled and fsynced per attempt as
        `note_failure` is: an offline device tries for hours. A crash loses at most this
        count; audio, order and confirmations are saved by their own writes, and a restarted
        daemon probes the link afresh anyway."""
        with self.lock:
            retry = self._get(recording_id).entry.retry
            retry.attempts += 1
            retry.next_attempt_at, retry.last_error = next_attempt_at, error[:500]
            self._mark_dirty(recording_id)
            return retry.attempts

    def requests_waiting(self) -> bool:
        """Whether the CLI left a request (`spool retry`) for `sync` to apply."""
        try:
            with os.scandir(self.dir / REQUESTS_DIR) as entries:
                return any(entry.name.endswith(".json") for entry in entries)
        except OSError:  # no box: nothing asked (take_requests reads it the same way)
            return False

    def sync_due(self) -> bool:
        """Whether `sync` has work besides `spool retry` requests: a writer to flush or
        batched changes to save. Lets an idle daemon skip the hop to a worker thread."""
        with self.lock:
            if self._dirty_since is not None:
                return True
            known = self._writing
            if known is None or known[0] != self._changes:  # writers change with _changes
                writing = any(lv.writer is not None for lv in self._live.values())
                known = self._writing = (self._changes, writing)
            return known[1]

    # ---- status -----------------------------------------------------------------------
    def backlog(self) -> BacklogStatus:
        """Asked for every status (twice a second): with thousands of recordings waiting, the
        pass over them runs once per ledger change, not per call."""
        with self.lock:
            summary = self._summary
            if summary is None or summary[0] != self._changes:
                entries = [lv.entry for lv in self._live.values()]
                oldest = min((e.created_at for e in entries), default=None)
                quarantined = sum(1 for e in entries if e.quarantine is not None)
                summary = self._summary = (self._changes, oldest, quarantined)
            _, oldest, quarantined = summary
            return BacklogStatus(
                recordings=len(self._live),
                bytes=self._used,
                oldest_age_s=None if oldest is None else max(0.0, self._clock() - oldest),
                quarantined=quarantined,
            )

    def space(self) -> SpaceStatus:
        """The space alarm, following the space really free (a refusal holds until then)."""
        with self.lock:
            free = self._free()
            refused = self._refused
            if refused is not None and refused.cleared(self._limits, self._used, free):
                self._refused = refused = None
                log.info("spool space back", free_bytes=free, used_bytes=self._used)
            return space_status(self._limits, self._used, free, refused)

    @property
    def notices(self) -> list[str]:
        return [f"{n.kind}: {n.detail}" for n in self.ledger.notices]

    # ---- internals ---------------------------------------------------------------------
    def _free(self) -> int:
        return self._ops.free_bytes(str(self.dir))

    def _get(self, recording_id: str) -> SpooledRecording:
        try:
            return self._live[recording_id]
        except KeyError:
            raise UnknownRecording(f"no recording {recording_id} in the spool") from None

    def _encounter(self, correlation_id: str) -> EncounterEntry:
        try:
            return self.ledger.encounters[correlation_id]
        except KeyError:
            raise UnknownRecording(f"no encounter {correlation_id} in the spool") from None

    def _ordered(self, lives: Iterable[SpooledRecording] | None = None) -> list[SpooledRecording]:
        """`lives` (default: every recording) oldest encounter first, then by seq."""
        encounters = self.ledger.encounters

        def key(lv: SpooledRecording) -> tuple[int, int]:
            enc = encounters.get(lv.entry.encounter)
            return (enc.order if enc is not None else -1, lv.entry.seq)

        return sorted(self._live.values() if lives is None else lives, key=key)

    def _close_reader(self, recording_id: str) -> None:
        """Lock order is always self.lock, then a reader's guard (read() never nests them
        the other way round)."""
        guard_reader = self._readers.pop(recording_id, None)
        if guard_reader is not None:
            guard, reader = guard_reader
            with guard:
                reader.close()

    def _forget(self, live: SpooledRecording) -> None:
        self._close_reader(live.entry.id)
        self._live.pop(live.entry.id, None)
        self._changes += 1

    def _reclaim(self, live: SpooledRecording) -> None:
        """Acknowledged audio: files first, then the ledger (a crash in between is finished
        at the next start, since the entry still says 'reclaimable')."""
        self._forget(live)
        self._used -= delete_segments(live, self.segments_dir, self._ops)
        drop_entry(self.ledger, live.entry.id)
        self._save(recs=[live.entry.id], encs=[live.entry.encounter])

    def _mark_dirty(self, recording_id: str) -> None:
        self._pending.add(recs=[recording_id])
        now = self._monotonic()
        if self._dirty_since is None:
            self._dirty_since = now
        elif now - self._dirty_since >= CONFIRM_SAVE_INTERVAL_S:
            self._save()

    def _save(
        self, *, recs: Iterable[str] = (), encs: Iterable[str] = (), full: bool = False
    ) -> None:
        """Persist the ledger (ids sealed, see identity.py): the entries a change touched
        (`recs`, `encs`: recording ids and correlation ids, present or removed) and any
        new notices as one journal record, or, with `full` or when the journal is due, a
        compaction (journal.py). OS errors become SpoolDiskFull / SpoolIOError; what was
        not saved is saved with the next change."""
        self._pending.add(recs, encs)
        self._changes += 1  # whatever changed, backlog() counts again
        try:
            if full or self._journal.due() or not self._append():
                self._journal.close()  # nothing more goes to a journal this may make stale
                _, size = commit_ledger(self.dir, self.ids.to_disk(self.ledger), self._ops)
                self._journal.attach(size)
        except OSError as exc:
            error = os_error(exc, "saving the spool ledger")
            self._write_failed(error)
            raise error from None
        self._pending.saved(self.ledger)
        self._dirty_since = None

    def _append(self) -> bool:
        """One journal record for what changed (pending.py); False when it is too big."""
        record = self._pending.record(self.ledger, self.ids)
        if record is None:
            return False
        self._journal.append(record)
        return True

    # ---- who an encounter is (identity.py) -----------------------------------------------
    @property
    def ids(self) -> Identities:
        if self._ids is None:
            raise SpoolError("the spool is not open")
        return self._ids

    def encounter_ref(self, correlation_id: str) -> str:
        """The encounter's opaque, publishable ref: keyed by this device's spool key, so the
        same id gives the same ref after a restart and nothing to anyone without the key."""
        return self.ids.ref(correlation_id)

    def _resolve(self, target: str | None) -> str | None:
        """An id as given, or the encounter whose ref it is (`spool list` shows refs)."""
        if target is None or target in self.ledger.recordings or target in self.ledger.encounters:
            return target
        return next((c for c in self.ledger.encounters if self.ids.ref(c) == target), target)

    def _contexts(self) -> EncounterContexts:
        if self._context_store is None:
            self._context_store = EncounterContexts(
                self.dir / CONTEXT_DIR, lambda: self._key, self.ids.context_name
            )
        return self._context_store
