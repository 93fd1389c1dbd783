"""What `edge-recorder spool` does without the daemon's help: read a consistent snapshot of
the ledger (no lock needed: ledger.json is replaced atomically, its journal only appended to,
and a journal names the ledger it extends: `journal.read_state`), and, holding the directory lock,
clear back-off or purge. None of this needs the device key: audio is never decrypted here,
and the ledger names encounters by their keyed `encounter_ref` (what the fleet dashboard
shows), the correlation ids themselves being sealed (`identity.py`).
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from edge_recorder.spool.crypto import load_key
from edge_recorder.spool.errors import SpoolError, SpoolLocked
from edge_recorder.spool.fileops import OsFileOps, fsync_dir
from edge_recorder.spool.identity import Identities
from edge_recorder.spool.journal import JOURNAL_NAME, commit_ledger, read_state
from edge_recorder.spool.ledger import LEDGER_NAME, LedgerData, RecordingEntry
from edge_recorder.spool.lock import SpoolLock, submit_request
from edge_recorder.spool.maintenance import clear_retry, forget_purged, purge_targets
from edge_recorder.spool.segments import SEGMENTS_DIR, SegmentRef, list_segments

#: Shortest id prefix `resolve` accepts: shorter ones match too much to be meant.
MIN_PREFIX = 4


@dataclass
class Snapshot:
    ledger: LedgerData
    segments: dict[str, list[SegmentRef]] = field(default_factory=dict)  # by recording hex
    key_file: Path | None = None  # lets `resolve` take a correlation id (its ref is keyed)

    def segments_of(self, recording_id: str) -> list[SegmentRef]:
        return self.segments.get(uuid.UUID(recording_id).hex, [])

    def disk_bytes(self, recording_id: str) -> int:
        return sum(s.size for s in self.segments_of(recording_id))

    def resolve(self, ident: str) -> str:
        """An encounter ref (as listed) or recording id, a unique prefix (>= 4 chars) of
        either, or, when the spool key is readable here, a correlation id. An ambiguous prefix
        is an error that lists the candidates (encounters by ref, recordings with theirs)."""
        if ident in self.ledger.encounters or ident in self.ledger.recordings:
            return ident
        ref = self._ref_of(ident)
        if ref is not None and ref in self.ledger.encounters:
            return ref
        if len(ident) < MIN_PREFIX:
            raise KeyError(
                f"no encounter or recording '{ident}' in the spool "
                f"(a prefix needs at least {MIN_PREFIX} characters)"
            )
        encounters = sorted(e for e in self.ledger.encounters if e.startswith(ident))
        recordings = sorted(r for r in self.ledger.recordings if r.startswith(ident))
        if len(encounters) + len(recordings) == 1:
            return (encounters or recordings)[0]
        if encounters or recordings:
            candidates = [f"encounter {e}" for e in encounters] + [
                f"recording {r} (encounter {self.ledger.recordings[r].encounter})"
                for r in recordings
            ]
            raise KeyError(
                f"'{ident}' matches {len(candidates)} entries; give more characters: "
                + ", ".join(candidates)
            )
        raise KeyError(f"no encounter or recording '{ident}' in the spool")

    def _ref_of(self, correlation_id: str) -> str | None:
        """The id's ref on this device, if the key can be read (root, or the service user)."""
        if self.key_file is None or self.ledger.version == 1:  # v1: ids are the keys
            return None
        try:
            key, _ = load_key(self.key_file, allow_create=False)
        except SpoolError:
            return None
        return Identities(key).ref(correlation_id)


def snapshot(directory: Path, key_file: Path | None = None) -> Snapshot:
    """The ledger as last saved plus segment sizes; an empty one when no spool exists yet."""
    ledger = read_state(directory) or LedgerData()
    groups, _ = list_segments(directory / SEGMENTS_DIR)
    return Snapshot(ledger, groups, key_file)


def _save_as_owner(directory: Path, ledger: LedgerData) -> None:
    """Save the ledger, and when run as root keep it owned by the spool's owner (the service
    user), or the daemon could no longer read its own ledger after an operator's command."""
    commit_ledger(directory, ledger, OsFileOps())
    if os.geteuid() == 0:
        owner = directory.stat()
        for name in (LEDGER_NAME, JOURNAL_NAME):
            os.chown(directory / name, owner.st_uid, owner.st_gid)


def retry(directory: Path, target: str | None) -> tuple[str, list[str]]:
    """("applied", ids) with the lock, or ("queued", []) for the running daemon to apply."""
    lock = SpoolLock(directory)
    try:
        lock.acquire()
    except SpoolLocked:
        submit_request(directory, "retry", target)
        return "queued", []
    try:
        ledger = read_state(directory) or LedgerData()
        changed = clear_retry(ledger, target)
        _save_as_owner(directory, ledger)
        return "applied", changed
    finally:
        lock.release()


@dataclass(frozen=True)
class PurgePlan:
    target: str
    recordings: list[RecordingEntry]
    disk_bytes: int
    undelivered: int


def plan_purge(snap: Snapshot, target: str, force: bool) -> PurgePlan:
    chosen = purge_targets(snap.ledger, target, force)
    return PurgePlan(
        target,
        chosen,
        sum(snap.disk_bytes(r.id) for r in chosen),
        sum(1 for r in chosen if not r.delivered),
    )


def ensure_unlocked(directory: Path) -> None:
    """SpoolLocked now if the daemon holds the spool: `purge` would be refused anyway, so say
    so before asking for `--force` or a confirmation (`purge` takes the lock again itself)."""
    if not directory.is_dir():
        return  # no spool yet: nobody holds it, and there is nothing to purge
    lock = SpoolLock(directory)
    lock.acquire()
    lock.release()


def purge(directory: Path, target: str, force: bool) -> list[str]:
    """Delete under the lock (the daemon must be stopped): ledger first, then the files."""
    lock = SpoolLock(directory)
    lock.acquire()  # SpoolLocked propagates: purging under a running daemon is refused
    try:
        snap = snapshot(directory)
        chosen = purge_targets(snap.ledger, target, force)
        forget_purged(snap.ledger, target, chosen, directory / SEGMENTS_DIR)
        _save_as_owner(directory, snap.ledger)
        for entry in chosen:
            for ref in snap.segments_of(entry.id):
                ref.path.unlink(missing_ok=True)
        fsync_dir(directory / SEGMENTS_DIR, OsFileOps())
        return [e.id for e in chosen]
    finally:
        lock.release()
