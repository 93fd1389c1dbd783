"""The ledger: what the spool holds and what the service has confirmed, replaced atomically.

Small by design: one entry per encounter and recording still in the spool (entries leave when
their space is reclaimed); audio lengths of open recordings come from the self-validating
segment files, so appends never rewrite the ledger. Each save is temp file → fsync → rename →
fsync(dir): after a crash the ledger is the old or the new version, never a mix. The running
spool saves it only to compact: each change in between is one record appended to the ledger's
journal (`journal.py`), so a change costs the same with 10 or 2,000 encounters.
The pure state rules (delivered? reclaimable?) live here beside the model, free of I/O.

The file is untrusted input at start-up (bit rot, a bad edit, a full disk mid-copy): it is
parsed strictly and bounded before use (size, nesting, types, every number's range, ids that
refer to each other), so a damaged ledger costs milliseconds and one log line, never a
traceback or a restart loop. What fails is moved aside whole and the spool rebuilds the
ledger from its segment files and their sealed recording headers (`maintenance.adopt_orphans`).
On disk (version 2) encounters are named by their keyed `encounter_ref`, the correlation id
itself only sealed (`identity.py`); version 1 (plain ids) is still read and migrated.
Entries are slotted dataclasses that pydantic validates (and builds) straight from the JSON,
and they are renamed in place from the disk form: a 2,000-recording backlog costs ~3 MB to
hold, not ~9 MB, and opening it never holds every entry three times (issue #24).
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from edge_recorder.spool.fileops import FileOps, fsync_dir, write_all
from edge_recorder.support.logs import get_logger

log = get_logger(__name__)

LEDGER_NAME = "ledger.json"
MAX_NOTICES = 50
MAX_LEDGER_BYTES = 16 * 1024 * 1024  # ~40,000 recordings; a real ledger is a few kB
MAX_ENTRIES = 100_000
MAX_BYTES = 1 << 48  # no recording is 256 TiB; the segment files bound it further at open
MAX_TIME = 1e11  # epoch seconds (year ~5000): finite and far in the future
_TEXT = 1000


class _M(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=False)


Epoch = Annotated[float, Field(ge=0, le=MAX_TIME, allow_inf_nan=False)]  # wall clock
Text = Annotated[str, Field(max_length=_TEXT)]
Bytes = Annotated[int, Field(ge=0, le=MAX_BYTES)]


class LedgerUnreadable(ValueError):
    """The ledger cannot be used; `reason` says why in a few words, without its content."""

    def __init__(self, target: Path, reason: str) -> None:
        super().__init__(f"ledger {target} is unreadable: {reason}")
        self.reason = reason


class _Entry:
    """Base of the entries held in memory: slotted dataclasses, ~0.5 kB a recording where a
    pydantic model cost ~3.5 kB (its `__dict__` and fields-set), so a backlog of thousands
    stays small (issue #24). Pydantic still validates them strictly when the ledger or a
    journal record is read (the field constraints below), straight into these objects."""

    __slots__ = ()
    __pydantic_config__: ClassVar[ConfigDict] = ConfigDict(extra="forbid")

    def model_dump(self, *, exclude: set[str] | None = None) -> dict[str, Any]:
        """The entry as plain data (nested entries too), as the pydantic models gave it."""
        data = asdict(self)  # type: ignore[call-overload]
        for name in exclude or ():
            data.pop(name, None)
        return data  # type: ignore[no-any-return]


@dataclass(slots=True, kw_only=True)
class RetryState(_Entry):
    attempts: Annotated[int, Field(ge=0, le=1_000_000_000)] = 0
    next_attempt_at: Epoch | None = None
    last_error: Text | None = None


UUID_PATTERN = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"


@dataclass(slots=True, kw_only=True)
class RecordingEntry(_Entry):
    id: Annotated[str, Field(pattern=UUID_PATTERN)]
    encounter: Annotated[str, Field(min_length=1, max_length=128)]
    seq: Annotated[int, Field(ge=0, le=1_000_000)]  # 0: an orphan whose number is unknown
    codec: Annotated[str, Field(max_length=32)]
    sample_rate: Annotated[int, Field(ge=0, le=1_000_000)]
    channels: Annotated[int, Field(ge=0, le=64)] = 1
    created_at: Epoch
    state: Literal["open", "closed"] = "open"
    closed_at: Epoch | None = None
    close_reason: Annotated[str, Field(max_length=64)] | None = None
    length: Bytes | None = None  # final byte length, set when closed
    confirmed: Bytes = 0  # bytes the service confirmed stored
    finalized: bool = False  # REST finalize (or stream completion) confirmed
    quarantine: Text | None = None  # why delivery must not touch it; None when healthy
    retry: RetryState = field(default_factory=RetryState)

    @property
    def deliverable(self) -> bool:
        """A service numbers recordings from 1: an orphan adopted without its recording
        header (seq 0, codec unknown) can be kept and purged, never sent."""
        return self.seq >= 1 and self.codec != "unknown"

    @property
    def delivered(self) -> bool:
        return (
            self.state == "closed"
            and self.length is not None
            and self.confirmed >= self.length
            and self.finalized
        )


@dataclass(slots=True, kw_only=True)
class EncounterEntry(_Entry):
    id: Annotated[str, Field(min_length=1, max_length=128)]  # on disk (v2): encounter_ref
    order: Annotated[int, Field(ge=0, le=1 << 40)]
    created_at: Epoch
    ended: bool = False
    processing_started: bool = False
    retry: RetryState = field(default_factory=RetryState)
    sealed_id: Annotated[str, Field(max_length=1024)] | None = None  # v2: the id, sealed


class Notice(_M):
    at: Epoch
    kind: str = Field(max_length=32)  # torn-tail | corrupt | orphan | ledger-reset | ...
    recording: str | None = Field(None, max_length=64)
    detail: Text


class RecordingTable(dict[str, RecordingEntry]):
    """The ledger's recordings by id, also indexed by encounter: the delivery engine asks
    for one encounter's recordings once per recording and per encounter, and a scan of the
    whole table each time made a backlog drain quadratic in its encounter count. Every way a
    dict changes keeps the index (an entry's `encounter` never changes in place)."""

    def __init__(self, items: Mapping[str, RecordingEntry] | None = None) -> None:
        super().__init__()
        self._by_encounter: dict[str, dict[str, None]] = {}  # ordered sets of recording ids
        if items:
            self.update(items)

    def __setitem__(self, key: str, rec: RecordingEntry) -> None:
        old = super().get(key)
        if old is not None:
            self._unindex(key, old)
        super().__setitem__(key, rec)
        self._by_encounter.setdefault(rec.encounter, {})[key] = None

    def __delitem__(self, key: str) -> None:
        rec = self[key]
        super().__delitem__(key)
        self._unindex(key, rec)

    def pop(self, key: str, *default: Any) -> Any:
        if key in self:
            rec = self[key]
            del self[key]
            return rec
        if default:
            return default[0]
        raise KeyError(key)

    def popitem(self) -> tuple[str, RecordingEntry]:
        key = next(reversed(self))
        return key, self.pop(key)

    def setdefault(self, key: str, default: RecordingEntry) -> RecordingEntry:
        if key not in self:
            self[key] = default
        return self[key]

    def update(self, *args: Any, **kwargs: RecordingEntry) -> None:
        for key, rec in dict(*args, **kwargs).items():
            self[key] = rec

    def __ior__(self, other: Any) -> Self:  # type: ignore[override,misc]
        self.update(other)
        return self

    def clear(self) -> None:
        super().clear()
        self._by_encounter.clear()

    def ids_of(self, encounter: str) -> list[str]:
        return list(self._by_encounter.get(encounter, ()))

    def _unindex(self, key: str, rec: RecordingEntry) -> None:
        ids = self._by_encounter.get(rec.encounter)
        if ids is not None:
            ids.pop(key, None)
            if not ids:
                del self._by_encounter[rec.encounter]


class LedgerData(_M):
    version: Literal[1, 2] = 2
    key_id: str | None = Field(None, max_length=64)
    next_order: int = Field(0, ge=0, le=1 << 40)
    encounters: dict[str, EncounterEntry] = Field(default_factory=dict, max_length=MAX_ENTRIES)
    recordings: dict[str, RecordingEntry] = Field(default_factory=dict, max_length=MAX_ENTRIES)
    notices: list[Notice] = Field(default_factory=list, max_length=4 * MAX_NOTICES)

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        self.check_consistent()
        if not isinstance(self.recordings, RecordingTable):
            self.recordings = RecordingTable(self.recordings)
        return self

    def check_consistent(self) -> None:
        """Entries agree with their keys and with each other (checked on every load, and
        after a journal replay); ValueError if not."""
        for key, enc in self.encounters.items():
            if enc.id != key:
                raise ValueError("an encounter is filed under another id")
        for key, rec in self.recordings.items():
            if rec.id != key:
                raise ValueError("a recording is filed under another id")
            if rec.encounter not in self.encounters:
                raise ValueError("a recording names an encounter the ledger does not hold")
            if rec.state == "closed" and rec.length is None:
                raise ValueError("a closed recording has no length")
            if rec.length is not None and rec.confirmed > rec.length:
                raise ValueError("a recording is confirmed beyond its length")

    def recordings_of(self, encounter: str) -> list[RecordingEntry]:
        """The encounter's recordings by seq, from the index (a copy made for the disk,
        `model_copy`, holds a plain dict: scanned)."""
        table = self.recordings
        if isinstance(table, RecordingTable):
            chosen = [table[rid] for rid in table.ids_of(encounter)]
        else:
            chosen = [r for r in table.values() if r.encounter == encounter]
        return sorted(chosen, key=lambda r: r.seq)

    def reclaimable(self, rec: RecordingEntry) -> bool:
        """Space may go only when the bytes are confirmed, finalized AND processing started."""
        enc = self.encounters.get(rec.encounter)
        return (
            rec.delivered and rec.quarantine is None and enc is not None and enc.processing_started
        )

    def add_notice(self, kind: str, detail: str, recording: str | None = None) -> None:
        self.notices.append(Notice(at=time.time(), kind=kind, recording=recording, detail=detail))
        del self.notices[:-MAX_NOTICES]


DELTA_ENTRIES = 64  # entries one journal record may touch; a bigger change compacts instead
MAX_RECORD_BYTES = 64 * 1024  # a change touches a few entries: ~0.5 kB; bigger → compact


class Delta(_M):
    """One change to the on-disk ledger: entries put whole (or None: removed)."""

    encounters: dict[str, EncounterEntry | None] = Field(
        default_factory=dict, max_length=DELTA_ENTRIES
    )
    recordings: dict[str, RecordingEntry | None] = Field(
        default_factory=dict, max_length=DELTA_ENTRIES
    )
    next_order: int = Field(ge=0, le=1 << 40)
    notices: list[Notice] = Field(default_factory=list, max_length=MAX_NOTICES)

    def apply(self, data: LedgerData) -> None:
        for key, enc in self.encounters.items():
            if enc is not None:
                data.encounters[key] = enc
        for key, rec in self.recordings.items():
            if rec is None:
                data.recordings.pop(key, None)
            else:
                data.recordings[key] = rec
        for key, enc in self.encounters.items():
            if enc is None:
                data.encounters.pop(key, None)
        data.next_order = self.next_order
        if self.notices:
            data.notices.extend(self.notices)
            del data.notices[:-MAX_NOTICES]


def save_ledger(directory: Path, data: LedgerData, ops: FileOps) -> bytes:
    """Atomically replace the ledger (temp, fsync, rename, fsync dir); returns the bytes
    written (their digest names the ledger a journal extends: `journal.py`). This alone makes
    any journal stale; the spool saves through `journal.commit_ledger`."""
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
    return payload


def read_ledger_file(directory: Path) -> LedgerData | None:
    """The ledger file alone (without its journal: see `journal.read_state`), or None if
    there is none yet; raises LedgerUnreadable (saying why, without content) when it is too
    large, not JSON, nested, mistyped or out of bounds."""
    return read_ledger_bytes(directory)[1]


def read_ledger_bytes(directory: Path) -> tuple[bytes, LedgerData | None]:
    """(the file's bytes, the ledger parsed from them); (b"", None) when there is none."""
    target = directory / LEDGER_NAME
    try:
        with target.open("rb") as f:
            size = os.fstat(f.fileno()).st_size
            raw = f.read(min(size, MAX_LEDGER_BYTES) + 1)  # read(n) allocates n bytes first
            if len(raw) > MAX_LEDGER_BYTES:
                raise LedgerUnreadable(target, f"{max(size, len(raw))} bytes is too large")
    except FileNotFoundError:
        return b"", None
    except OSError as exc:
        raise LedgerUnreadable(target, str(exc.strerror)) from None
    try:  # pydantic's Rust JSON parser: bounded nesting, strict UTF-8, no float for an int
        return raw, LedgerData.model_validate_json(raw, strict=True)
    except ValidationError as exc:
        raise LedgerUnreadable(target, describe(exc)) from None


def describe(exc: ValidationError) -> str:
    """The first problem, as type and place only: the ledger's values (which may be ids of
    a version 1 ledger) never reach a log. Keys under encounters/recordings are ids too."""
    err = exc.errors(include_url=False, include_input=False)[0]
    parts: list[str] = []
    for item in err["loc"]:
        parts.append("<id>" if parts and parts[-1] in ("encounters", "recordings") else str(item))
    where = ".".join(parts) or "the top level"
    if err["type"] == "json_invalid":
        return f"not valid JSON ({err['msg'].removeprefix('Invalid JSON: ')})"
    if err["type"] == "value_error":
        return str(err.get("ctx", {}).get("error", err["msg"]))
    return f"{_SAME_AS_MODEL.get(err['type'], err['type'])} at {where}"


# Entries are dataclasses now: their errors are named as the pydantic models named them.
_SAME_AS_MODEL = {"unexpected_keyword_argument": "extra_forbidden", "dataclass_type": "model_type"}


def set_aside(directory: Path, reason: str) -> LedgerData:
    """Move a bad ledger out of the way (kept for inspection, never deleted) and start an
    empty one that says so; the caller rebuilds it from the segments."""
    aside = directory / f"{LEDGER_NAME}.corrupt-{time.time_ns()}"
    with contextlib.suppress(FileNotFoundError):
        (directory / LEDGER_NAME).replace(aside)
    log.error("spool ledger unusable; moved aside, rebuilding from the segments",
              path=str(aside), reason=reason)  # fmt: skip
    data = LedgerData()
    data.add_notice("ledger-reset", f"unusable ledger moved to {aside.name}: {reason}"[:_TEXT])
    return data


def load_ledger(directory: Path) -> tuple[LedgerData, bool]:
    """(ledger, fresh), from ledger.json alone (the spool opens through `journal.load_state`,
    which adds the journal). An unreadable ledger is moved aside (never deleted) and replaced
    by an empty one; the spool then rebuilds it from its segments."""
    (directory / f".{LEDGER_NAME}.tmp").unlink(missing_ok=True)  # an unfinished save
    try:
        data = read_ledger_file(directory)
    except LedgerUnreadable as exc:
        return set_aside(directory, exc.reason), False
    if data is None:
        return LedgerData(), True
    return data, False
