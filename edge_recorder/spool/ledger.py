"""The ledger: what the spool holds and what the service has confirmed, replaced atomically.

Small by design: one entry per encounter and recording still in the spool (entries leave when
their space is reclaimed); audio lengths of open recordings come from the self-validating
segment files, so appends never rewrite the ledger. Each save is temp file → fsync → rename →
fsync(dir): after a crash the ledger is the old or the new version, never a mix.
The pure state rules (delivered? reclaimable?) live here beside the model, free of I/O.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from edge_recorder.spool.fileops import FileOps, fsync_dir, write_all
from edge_recorder.support.logs import get_logger

log = get_logger(__name__)

LEDGER_NAME = "ledger.json"
MAX_NOTICES = 50


class _M(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=False)


class RetryState(_M):
    attempts: int = 0
    next_attempt_at: float | None = None  # wall clock (epoch seconds)
    last_error: str | None = None


class RecordingEntry(_M):
    id: str
    encounter: str
    seq: int
    codec: str
    sample_rate: int
    channels: int = 1
    created_at: float
    state: Literal["open", "closed"] = "open"
    closed_at: float | None = None
    close_reason: str | None = None
    length: int | None = None  # final byte length, set when closed
    confirmed: int = 0  # bytes the service confirmed stored
    finalized: bool = False  # REST finalize (or stream completion) confirmed
    quarantine: str | None = None  # why delivery must not touch it; None when healthy
    retry: RetryState = Field(default_factory=RetryState)

    @property
    def delivered(self) -> bool:
        return (
            self.state == "closed"
            and self.length is not None
            and self.confirmed >= self.length
            and self.finalized
        )


class EncounterEntry(_M):
    id: str
    order: int
    created_at: float
    ended: bool = False
    processing_started: bool = False
    retry: RetryState = Field(default_factory=RetryState)


class Notice(_M):
    at: float
    kind: str  # torn-tail | corrupt | orphan | ledger-reset | missing-segment
    recording: str | None = None
    detail: str


class LedgerData(_M):
    version: Literal[1] = 1
    key_id: str | None = None
    next_order: int = 0
    encounters: dict[str, EncounterEntry] = Field(default_factory=dict)
    recordings: dict[str, RecordingEntry] = Field(default_factory=dict)
    notices: list[Notice] = Field(default_factory=list)

    def recordings_of(self, encounter: str) -> list[RecordingEntry]:
        return sorted(
            (r for r in self.recordings.values() if r.encounter == encounter), key=lambda r: r.seq
        )

    def reclaimable(self, rec: RecordingEntry) -> bool:
        """Space may go only when the bytes are confirmed, finalized AND processing started."""
        enc = self.encounters.get(rec.encounter)
        return (
            rec.delivered and rec.quarantine is None and enc is not None and enc.processing_started
        )

    def add_notice(self, kind: str, detail: str, recording: str | None = None) -> None:
        self.notices.append(Notice(at=time.time(), kind=kind, recording=recording, detail=detail))
        del self.notices[:-MAX_NOTICES]


def save_ledger(directory: Path, data: LedgerData, ops: FileOps) -> None:
    """Atomically replace the ledger (temp, fsync, rename, fsync dir)."""
    target = directory / LEDGER_NAME
    tmp = directory / f".{LEDGER_NAME}.tmp"
    payload = data.model_dump_json(indent=None).encode()
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        write_all(ops, fd, payload)
        ops.fsync(fd)
    finally:
        os.close(fd)
    tmp.replace(target)
    fsync_dir(directory, ops)


def read_ledger_file(directory: Path) -> LedgerData | None:
    """The ledger, or None if there is none yet; raises ValueError when unreadable."""
    target = directory / LEDGER_NAME
    try:
        raw = target.read_bytes()
    except FileNotFoundError:
        return None
    try:
        return LedgerData.model_validate(json.loads(raw))
    except (ValueError, ValidationError) as exc:
        raise ValueError(f"ledger {target} is unreadable: {exc.__class__.__name__}") from None


def load_ledger(directory: Path) -> tuple[LedgerData, bool]:
    """(ledger, fresh). An unreadable ledger is moved aside (never deleted) and replaced by
    an empty one; the spool then adopts its segments as quarantined orphans."""
    (directory / f".{LEDGER_NAME}.tmp").unlink(missing_ok=True)  # an unfinished save
    try:
        data = read_ledger_file(directory)
    except ValueError as exc:
        aside = directory / f"{LEDGER_NAME}.corrupt-{int(time.time())}"
        (directory / LEDGER_NAME).replace(aside)
        log.error("spool ledger unreadable; moved aside", path=str(aside), error=str(exc))
        data = LedgerData()
        data.add_notice("ledger-reset", f"unreadable ledger moved to {aside.name}")
        return data, False
    if data is None:
        return LedgerData(), True
    return data, False
