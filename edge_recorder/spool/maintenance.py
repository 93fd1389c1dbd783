"""Start-up bookkeeping and operator actions on the ledger: recovery, orphans, reclaim,
retry and purge selection. Functions here change the ledger in memory; the Spool saves it."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path

from edge_recorder.spool.errors import SpoolError, UnknownRecording
from edge_recorder.spool.fileops import FileOps, fsync_dir
from edge_recorder.spool.headers import RecordingHeader, drop_header, sync_headers
from edge_recorder.spool.ledger import EncounterEntry, LedgerData, RecordingEntry
from edge_recorder.spool.recovery import RecoveryResult, recover_tail
from edge_recorder.spool.segments import SegmentRef
from edge_recorder.spool.state import SpooledRecording
from edge_recorder.support.logs import get_logger

log = get_logger(__name__)

ORPHAN_ENCOUNTER = "orphaned-segments"


def _apply_recovery(ledger: LedgerData, live: SpooledRecording, ops: FileOps) -> None:
    rid = live.entry.id
    try:
        result = recover_tail(live, ops)
    except Exception as exc:  # never a crash loop: a bug here quarantines, it does not abort
        result = RecoveryResult(end=0, corrupt=f"recovery failed: {exc.__class__.__name__}: {exc}")
    live.end = live.durable = result.end
    if result.truncated_bytes:
        removed = f" (removed {', '.join(result.removed_files)})" if result.removed_files else ""
        ledger.add_notice("torn-tail", f"cut {result.truncated_bytes} torn bytes{removed}", rid)
        log.info("torn tail truncated", recording_id=rid, cut_bytes=result.truncated_bytes)
    if result.corrupt is not None:
        live.entry.quarantine = result.corrupt
        ledger.add_notice("corrupt", result.corrupt, rid)
        log.warning("corrupt spool data quarantined", recording_id=rid, reason=result.corrupt)


def recover_all(
    ledger: LedgerData, groups: dict[str, list[SegmentRef]], ops: FileOps
) -> dict[str, SpooledRecording]:
    """Runtime state for every ledger recording; consumes their entries from `groups`."""
    lives: dict[str, SpooledRecording] = {}
    for entry in ledger.recordings.values():
        rec_uuid = uuid.UUID(entry.id)
        live = SpooledRecording(entry, rec_uuid, groups.pop(rec_uuid.hex, []))
        if entry.state == "closed":
            live.end = live.durable = entry.length or 0
            missing = live.end > 0 and not live.segments
            if missing and not ledger.reclaimable(entry) and entry.quarantine is None:
                entry.quarantine = "segment files missing"
                ledger.add_notice("missing-segment", entry.quarantine, entry.id)
        else:
            _apply_recovery(ledger, live, ops)
        lives[entry.id] = live
    return lives


def check_against_segments(ledger: LedgerData, groups: dict[str, list[SegmentRef]]) -> None:
    """ValueError when the ledger claims more audio than a recording's segment files hold
    (the plaintext is never longer than the files): such a number is damage, and trusting it
    would have delivery read terabytes that do not exist."""
    for entry in ledger.recordings.values():
        refs = groups.get(uuid.UUID(entry.id).hex)
        if not refs:
            continue  # no files: reclaimed already, or quarantined as missing by recover_all
        if max(entry.length or 0, entry.confirmed) > sum(r.size for r in refs):
            raise ValueError("a recording is longer than its segment files")


def _placeholder(ledger: LedgerData, now: float) -> str:
    if ORPHAN_ENCOUNTER not in ledger.encounters:
        ledger.encounters[ORPHAN_ENCOUNTER] = EncounterEntry(
            id=ORPHAN_ENCOUNTER, order=ledger.next_order, created_at=now, ended=True
        )
        ledger.next_order += 1
    return ORPHAN_ENCOUNTER


def _adopted_entry(
    ledger: LedgerData, rec_uuid: uuid.UUID, header: RecordingHeader | None, now: float
) -> RecordingEntry:
    """The ledger entry of a recording known only from its files: from its sealed header
    (encounter, number, codec), or a placeholder that can be kept but never delivered."""
    if header is None:
        return RecordingEntry(
            id=str(rec_uuid), encounter=_placeholder(ledger, now), seq=0, codec="unknown",
            sample_rate=0, created_at=now,
        )  # fmt: skip
    if header.encounter not in ledger.encounters:
        ledger.encounters[header.encounter] = EncounterEntry(
            id=header.encounter, order=ledger.next_order, created_at=header.created_at,
            ended=True,
        )  # fmt: skip
        ledger.next_order += 1
    return RecordingEntry(
        id=str(rec_uuid), encounter=header.encounter, seq=header.seq, codec=header.codec,
        sample_rate=header.sample_rate, channels=header.channels, created_at=header.created_at,
    )  # fmt: skip


def adopt_orphans(
    ledger: LedgerData,
    groups: dict[str, list[SegmentRef]],
    ops: FileOps,
    now: float,
    header_of: Callable[[str], RecordingHeader | None] = lambda _hex: None,
) -> dict[str, SpooledRecording]:
    """Segments the ledger does not know (a lost or damaged ledger) become recordings again.
    With a sealed header (`headers.py`) they rejoin their encounter under their own number
    and are delivered as usual; without one (segments older than headers) they are kept as
    quarantined recordings of a placeholder encounter: reported, never deleted silently, and
    never sent (a service cannot take a recording without its encounter and number)."""
    lives: dict[str, SpooledRecording] = {}
    found = [(hex_id, refs, header_of(hex_id)) for hex_id, refs in groups.items()]
    found.sort(key=lambda item: (item[2] is None, item[2].created_at if item[2] else 0, item[0]))
    for hex_id, refs, header in found:
        rec_uuid = uuid.UUID(hex_id)
        entry = _adopted_entry(ledger, rec_uuid, header, now)
        live = SpooledRecording(entry, rec_uuid, refs)
        _apply_recovery(ledger, live, ops)
        entry.state, entry.length, entry.closed_at = "closed", live.end, now
        if header is None:
            entry.close_reason = "orphan"
            if entry.quarantine is None:
                entry.quarantine = "orphan segments: no ledger entry and no recording header"
            ledger.add_notice("orphan", entry.quarantine, entry.id)
        else:
            entry.close_reason = "recovered"
            if refs[0].base_offset != 0 and entry.quarantine is None:
                entry.quarantine = "recovered without its first segment"
            ledger.add_notice("recovered", "rebuilt from its segments and sealed header", entry.id)
        ledger.recordings[entry.id] = entry
        lives[entry.id] = live
    groups.clear()
    return lives


def delete_segments(live: SpooledRecording, segments_dir: Path, ops: FileOps) -> int:
    """Unlink a recording's segment files and make that durable; returns bytes freed.
    Missing files are fine (a delete interrupted earlier)."""
    drop_header(segments_dir.parent, live.uuid.hex)  # first: a half-done delete never revives
    freed = 0
    for ref in live.segments:
        try:
            ref.path.unlink()
            freed += ref.size
        except FileNotFoundError:
            pass
    live.segments.clear()
    fsync_dir(segments_dir, ops)
    return freed


def drop_entry(ledger: LedgerData, recording_id: str) -> None:
    """Forget a recording; forget its encounter too once it is empty and done with."""
    entry = ledger.recordings.pop(recording_id, None)
    if entry is None:
        return
    enc = ledger.encounters.get(entry.encounter)
    if enc is not None and not ledger.recordings_of(enc.id) and (enc.processing_started):
        del ledger.encounters[enc.id]


def clear_retry(ledger: LedgerData, target: str | None) -> list[str]:
    """Reset back-off and lift quarantine for a recording, an encounter (and its recordings)
    or everything; returns the ids changed."""
    recs: list[RecordingEntry]
    encs: list[EncounterEntry]
    if target is None:
        recs = list(ledger.recordings.values())
        encs = list(ledger.encounters.values())
    elif target in ledger.recordings:
        recs, encs = [ledger.recordings[target]], []
    elif target in ledger.encounters:
        recs, encs = ledger.recordings_of(target), [ledger.encounters[target]]
    else:
        raise UnknownRecording(f"no recording or encounter {target} in the spool")
    changed = []
    items: list[RecordingEntry | EncounterEntry] = [*recs, *encs]
    for item in items:
        if isinstance(item, RecordingEntry) and not item.deliverable:
            continue  # an orphan without its header: releasing it could only fail at the service
        quarantined = isinstance(item, RecordingEntry) and item.quarantine is not None
        if item.retry.next_attempt_at is not None or item.retry.attempts or quarantined:
            changed.append(item.id)
        item.retry.attempts, item.retry.next_attempt_at = 0, None
        if isinstance(item, RecordingEntry):
            item.quarantine = None
    return changed


def purge_targets(
    ledger: LedgerData,
    target: str,
    force: bool,
    recording_now: set[str] | frozenset[str] = frozenset(),
) -> list[RecordingEntry]:
    """The recordings `purge TARGET` would delete, after the safety checks: nothing being
    recorded, and nothing undelivered unless `force`."""
    if target in ledger.recordings:
        chosen = [ledger.recordings[target]]
    elif target in ledger.encounters:
        chosen = ledger.recordings_of(target)
    else:
        raise UnknownRecording(f"no recording or encounter {target} in the spool")
    if any(r.id in recording_now for r in chosen):
        raise SpoolError(f"{target} is being recorded right now; stop it first")
    undelivered = [r.id for r in chosen if not r.delivered]
    if undelivered and not force:
        raise SpoolError(
            f"{len(undelivered)} recording(s) of {target} hold audio the service has not "
            "confirmed; purging destroys it (use --force if that is really intended)"
        )
    return chosen


def forget_purged(
    ledger: LedgerData, target: str, chosen: list[RecordingEntry], segments_dir: Path
) -> None:
    """Ledger side of a purge (saved BEFORE files go: a crash leaves orphans, not a gap).
    The recordings' headers go now, so those orphans stay orphans and are never delivered."""
    for entry in chosen:
        drop_header(segments_dir.parent, uuid.UUID(entry.id).hex)
        ledger.recordings.pop(entry.id, None)
    if chosen:
        sync_headers(segments_dir.parent)  # gone for good before the ledger says so
    if target in ledger.encounters and not ledger.recordings_of(target):
        del ledger.encounters[target]
    ledger.add_notice("purge", f"purged {len(chosen)} recording(s) of {target}")
