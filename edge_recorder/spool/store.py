"""`Spool`: the one object the capture path, the delivery engine and status talk to.

Life of a recording: `begin_recording()` → writer.append()… → writer.close(reason); the
delivery engine reads it (`read`, `wait_for_data`), records the service's acknowledgements
(`confirm`, `mark_finalized`, then per encounter `mark_processing_started`), and only then are
its segment files deleted. Nothing else deletes audio except an explicit `purge`.
Opening never raises for damaged data: problems become quarantined recordings and notices.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Container, Iterator, Mapping
from typing import Any

from edge_recorder.spool.core import CONFIRM_SAVE_INTERVAL_S, SpoolCore
from edge_recorder.spool.errors import CorruptRecord, SpoolError, SpoolIOError, os_error
from edge_recorder.spool.headers import RecordingHeader, write_header
from edge_recorder.spool.ledger import EncounterEntry, RecordingEntry, RetryState
from edge_recorder.spool.maintenance import delete_segments, forget_purged, purge_targets
from edge_recorder.spool.policy import check_new_encounter
from edge_recorder.spool.reader import RecordingReader
from edge_recorder.spool.state import EncounterInfo, RecordingInfo, SpooledRecording
from edge_recorder.spool.writer import RecordingWriter
from edge_recorder.support.logs import get_logger

log = get_logger(__name__)


class Spool(SpoolCore):
    """The public API (see the module docstring); thread-safe."""

    # ---- capture path ----------------------------------------------------------------------
    def begin_encounter(self, correlation_id: str) -> None:
        """Admit a new encounter, or raise SpoolRefused (high water / disk reserve)."""
        with self.lock:
            if correlation_id in self.ledger.encounters:
                return
            check_new_encounter(self._limits, self._used, self._free())
            self.ledger.encounters[correlation_id] = EncounterEntry(
                id=correlation_id, order=self.ledger.next_order, created_at=self._clock()
            )
            self.ledger.next_order += 1
            try:
                self._save(encs=[correlation_id])
            except SpoolError:
                del self.ledger.encounters[correlation_id]  # not admitted after all
                raise

    def begin_recording(
        self,
        correlation_id: str,
        seq: int,
        recording_id: str,
        *,
        codec: str,
        sample_rate: int,
        channels: int = 1,
    ) -> RecordingWriter:
        """Start recording `seq` (1-based) of an encounter; a new encounter is admitted first
        (and may be refused); a known one always gets its recording (it may run to the cap)."""
        rec_uuid = uuid.UUID(recording_id)
        with self.lock:
            self.begin_encounter(correlation_id)
            enc = self.ledger.encounters[correlation_id]
            if enc.ended:
                raise SpoolError(f"encounter {correlation_id} has ended")
            if str(rec_uuid) in self.ledger.recordings:
                raise SpoolError(f"recording {rec_uuid} already exists")
            entry = RecordingEntry(
                id=str(rec_uuid), encounter=correlation_id, seq=seq, codec=codec,
                sample_rate=sample_rate, channels=channels, created_at=self._clock(),
            )  # fmt: skip
            header = RecordingHeader(
                encounter=correlation_id, seq=seq, codec=codec, sample_rate=sample_rate,
                channels=channels, created_at=entry.created_at,
            )  # fmt: skip
            try:  # before the ledger and any audio: a lost ledger can be rebuilt from it
                write_header(self.dir, rec_uuid.hex, header, self.ids.header_cipher)
            except OSError as exc:
                error = os_error(exc, "writing a recording header")
                self._write_failed(error)
                raise error from None
            self.ledger.recordings[entry.id] = entry
            try:
                self._save(recs=[entry.id])  # the ledger knows it before any segment exists
            except SpoolError:
                del self.ledger.recordings[entry.id]
                raise
            live = SpooledRecording(entry, rec_uuid)
            writer = RecordingWriter(
                self, live, key=self._key, segments_dir=self.segments_dir,
                segment_bytes=int(self.config.segment_bytes),
                fsync_interval_s=self.config.fsync_interval_s, ops=self._ops,
                monotonic=self._monotonic,
            )  # fmt: skip
            live.writer = writer
            self._live[entry.id] = live
            self._changes += 1
        self._notifier.notify()
        return writer

    def end_encounter(self, correlation_id: str) -> None:
        """No more recordings will come; delivery may start processing once all are stored."""
        with self.lock:
            self._encounter(correlation_id).ended = True
            self._save(encs=[correlation_id])
        self._notifier.notify()

    def recovered_open_recordings(self) -> list[RecordingInfo]:
        """Recordings left open by a crash; the daemon closes them ("crash-recovered")."""
        with self.lock:
            return [
                RecordingInfo.of(lv)
                for lv in self._ordered()
                if lv.entry.state == "open" and lv.writer is None
            ]

    def close_recovered(self, recording_id: str, reason: str = "crash-recovered") -> None:
        with self.lock:
            live = self._get(recording_id)
            if live.writer is not None or live.entry.state == "closed":
                return
            self._writer_closed(live, reason)

    def sync(self) -> None:
        """For a timer every ~fsync_interval_s: fsync idle writers when due, persist acks,
        apply `spool retry` requests from the CLI."""
        with self.lock:
            writers = [lv.writer for lv in self._live.values() if lv.writer is not None]
        for writer in writers:
            writer.flush_if_due()
        self.apply_requests()
        with self.lock:  # acks and back-off resets are re-sendable: batched, not per tick
            since = self._dirty_since
            if since is not None and self._monotonic() - since >= CONFIRM_SAVE_INTERVAL_S:
                self._save()

    # ---- delivery engine ---------------------------------------------------------------
    def pending_recordings(
        self, ready_at: float | None = None, *, open_only: bool = False
    ) -> list[RecordingInfo]:
        """Undelivered, unquarantined recordings, oldest encounter first, then by seq.
        With `ready_at`, only those whose back-off has expired by then; with `open_only`,
        only those still being recorded (the live task asks every 2 s: with a backlog of
        thousands it must not build a record for each closed one)."""
        return list(self.iter_pending(ready_at, open_only=open_only))

    def _open_recordings(self) -> list[SpooledRecording]:
        """Recordings still open (being written, or left open by a crash until closed). The
        live task asks every wake-up; offline with 2,000 recordings waiting, a pass over all
        of them each time was what the backlog added to an idle device's CPU (issue #24), so
        it runs once per ledger change (every open and close saves the ledger). Under lock."""
        known = self._open
        if known is None or known[0] != self._changes:
            still_open = [lv for lv in self._live.values() if lv.entry.state == "open"]
            known = self._open = (self._changes, still_open)
        return known[1]

    def iter_pending(
        self, ready_at: float | None = None, *, open_only: bool = False
    ) -> Iterator[RecordingInfo]:
        """`pending_recordings`, each record built only when the caller gets to it: a
        delivery pass stops at the first network failure, and with 2,000 recordings waiting
        building every record per pass was half of an offline device's idle CPU. The order
        is fixed at the first step; a recording delivered, quarantined or backed off
        meanwhile is skipped. No lock is held between steps."""

        def wanted(live: SpooledRecording) -> bool:
            e = live.entry
            if e.delivered or e.quarantine is not None:
                return False
            if open_only and e.state != "open":
                return False
            return ready_at is None or (e.retry.next_attempt_at or 0) <= ready_at

        with self.lock:
            lives = self._open_recordings() if open_only else self._live.values()
            chosen = [lv.entry.id for lv in self._ordered(lv for lv in lives if wanted(lv))]
        for recording_id in chosen:
            with self.lock:
                live = self._live.get(recording_id)
                if live is None or not wanted(live):
                    continue
                info = RecordingInfo.of(live)
            yield info

    def next_attempt_due(self, skip: Container[str] = ()) -> float | None:
        """The earliest back-off expiry among closed, pending recordings not in `skip`
        (None: none is backed off), without building a record for each."""
        with self.lock:
            return min(
                (
                    lv.entry.retry.next_attempt_at
                    for lv in self._live.values()
                    if lv.entry.state == "closed"
                    and not lv.entry.delivered
                    and lv.entry.quarantine is None
                    and lv.entry.retry.next_attempt_at is not None
                    and lv.entry.id not in skip
                ),
                default=None,
            )

    def encounters_ready_for_processing(self, ready_at: float | None = None) -> list[EncounterInfo]:
        """Ended encounters whose recordings are all delivered and processing not started."""
        with self.lock:
            out = []
            for enc in sorted(self.ledger.encounters.values(), key=lambda x: x.order):
                info = EncounterInfo.of(enc, self.ledger)
                if not enc.ended or enc.processing_started or not info.all_delivered:
                    continue
                if ready_at is not None and (enc.retry.next_attempt_at or 0) > ready_at:
                    continue
                out.append(info)
            return out

    def recordings(self) -> list[RecordingInfo]:
        with self.lock:
            return [RecordingInfo.of(lv) for lv in self._ordered()]

    def holds(self, recording_id: str) -> bool:
        """The recording is still in the spool (not reclaimed or purged)."""
        with self.lock:
            return recording_id in self._live

    def recording(self, recording_id: str) -> RecordingInfo:
        with self.lock:
            return RecordingInfo.of(self._get(recording_id))

    def encounter(self, correlation_id: str) -> EncounterInfo:
        with self.lock:
            return EncounterInfo.of(self._encounter(correlation_id), self.ledger)

    def read(self, recording_id: str, offset: int, max_bytes: int) -> bytes:
        """Exactly the encoded bytes [offset, offset + max_bytes) as far as written; b"" at
        the end. CorruptRecord (after quarantining the recording) if they cannot be read."""
        with self.lock:
            live = self._get(recording_id)
            end = live.end
            if not 0 <= offset <= end:
                raise ValueError(f"offset {offset} outside 0..{end} of recording {recording_id}")
            start, recent = live.recent  # what capture appended last: no file read, no decrypt
            if start <= offset and offset + min(max_bytes, end - offset) <= start + len(recent):
                return recent[offset - start : offset - start + min(max_bytes, end - offset)]
            if recording_id not in self._readers:
                self._readers[recording_id] = (threading.Lock(), RecordingReader(live, self._key))
            guard, reader = self._readers[recording_id]
        try:
            with guard:
                return reader.read(offset, max_bytes, end)
        except CorruptRecord as exc:
            self.quarantine(recording_id, str(exc))  # outside the guard: see _close_reader
            raise
        except OSError as exc:
            raise SpoolIOError(f"reading recording {recording_id}: {exc.strerror}") from None

    def _has_data(self, recording_id: str, offset: int) -> Callable[[], bool]:
        live = self._get(recording_id)
        # Done waiting when bytes arrive, or when none can: closed, quarantined, or no writer
        # in this process (left open by a crash, until the daemon closes it).
        return lambda: (
            live.end > offset
            or live.entry.state == "closed"
            or bool(live.entry.quarantine)
            or live.writer is None
        )

    async def wait_for_data(self, recording_id: str, offset: int) -> None:
        """Return once there are bytes beyond `offset`, or once none can come (closed,
        quarantined, or not being written by this process). Bound it with asyncio.timeout()."""
        await self._notifier.wait(self._has_data(recording_id, offset))

    def wait_for_data_blocking(
        self, recording_id: str, offset: int, timeout: float | None = None
    ) -> bool:
        """The same for a thread; False on timeout."""
        return self._notifier.wait_blocking(self._has_data(recording_id, offset), timeout)

    def confirm(self, recording_id: str, offset: int) -> None:
        """The service holds bytes [0, offset). Lower values than already known are ignored
        (a late ack); use `reset_confirmed` when the service forgot the recording."""
        with self.lock:
            live = self._get(recording_id)
            if not 0 <= offset <= live.end:
                raise ValueError(f"confirmed offset {offset} beyond the {live.end} bytes written")
            if offset > live.entry.confirmed:
                live.entry.confirmed = offset
                self._mark_dirty(recording_id)

    def reset_confirmed(self, recording_id: str) -> None:
        """The service lost the recording: deliver it again from byte 0."""
        with self.lock:
            e = self._get(recording_id).entry
            e.confirmed, e.finalized = 0, False
            self._save(recs=[recording_id])

    def mark_finalized(self, recording_id: str) -> None:
        with self.lock:
            live = self._get(recording_id)
            e = live.entry
            if e.state != "closed" or e.length is None or e.confirmed < e.length:
                raise SpoolError(
                    f"recording {recording_id} cannot be finalized: {e.confirmed} of "
                    f"{live.end} bytes confirmed, state {e.state}"
                )
            e.finalized = True
            e.retry.next_attempt_at = None
            self._save(recs=[recording_id])

    def mark_processing_started(self, correlation_id: str) -> None:
        """Processing started: now (and only now) the encounter's delivered audio is deleted."""
        with self.lock:
            self._encounter(correlation_id).processing_started = True
            self._save(encs=[correlation_id])
            for entry in self.ledger.recordings_of(correlation_id):  # not all, sorted: O(n)
                live = self._live.get(entry.id)
                if live is not None and self.ledger.reclaimable(entry):
                    self._reclaim(live)
            self._contexts().drop(correlation_id)

    # ---- an encounter's EHR context (sealed; see context.py) -------------------------------
    def save_context(self, correlation_id: str, values: Mapping[str, Any]) -> None:
        """Keep who the encounter is for at the service until its audio is handed over."""
        self._contexts().save(correlation_id, values)

    def encounter_context(self, correlation_id: str) -> dict[str, Any] | None:
        return self._contexts().load(correlation_id)

    def quarantine(self, recording_id: str, reason: str) -> None:
        """Delivery must stop retrying this recording; it is kept and reported, not deleted."""
        with self.lock:
            e = self._get(recording_id).entry
            e.quarantine = reason[:500]
            self.ledger.add_notice("quarantine", reason[:500], recording_id)
            self._save(recs=[recording_id])
        log.warning("recording quarantined", recording_id=recording_id, reason=reason)
        self._notifier.notify()

    def note_failure(self, recording_id: str, error: str, next_attempt_at: float) -> int:
        """Count a failed delivery attempt and its back-off (persisted); returns attempts."""
        with self.lock:
            retry = self._get(recording_id).entry.retry
            return self._note(retry, error, next_attempt_at, recs=[recording_id])

    def note_encounter_failure(
        self, correlation_id: str, error: str, next_attempt_at: float
    ) -> int:
        with self.lock:
            retry = self._encounter(correlation_id).retry
            return self._note(retry, error, next_attempt_at, encs=[correlation_id])

    def note_success(self, recording_id: str) -> None:
        """Delivery made progress: reset the back-off (saved with the next ledger write)."""
        with self.lock:
            retry = self._get(recording_id).entry.retry
            if retry.attempts or retry.next_attempt_at is not None:
                retry.attempts, retry.next_attempt_at = 0, None
                self._mark_dirty(recording_id)

    def _note(
        self,
        retry: RetryState,
        error: str,
        next_attempt_at: float,
        *,
        recs: tuple[str, ...] | list[str] = (),
        encs: tuple[str, ...] | list[str] = (),
    ) -> int:
        retry.attempts += 1
        retry.next_attempt_at, retry.last_error = next_attempt_at, error[:500]
        self._save(recs=recs, encs=encs)
        return retry.attempts

    # ---- operator actions --------------------------------------------------------------
    def purge(self, target: str, *, force: bool = False) -> list[str]:
        """Delete a recording or encounter; refuses undelivered audio unless `force`."""
        with self.lock:
            target = self._resolve(target) or target
            writing = {rid for rid, lv in self._live.items() if lv.writer is not None}
            chosen = purge_targets(self.ledger, target, force, writing)
            lives = [self._live[e.id] for e in chosen if e.id in self._live]
            forget_purged(self.ledger, target, chosen, self.segments_dir)
            self._save(full=True)  # ledger first: a crash mid-purge leaves orphans, not a gap
            for live in lives:
                self._forget(live)
                self._used -= delete_segments(live, self.segments_dir, self._ops)
            if target not in self.ledger.encounters:  # an encounter purged as a whole
                self._contexts().drop(target)
            log.warning("spool purge", target_id=target, recordings_count=len(chosen), force=force)
            return [e.id for e in chosen]
