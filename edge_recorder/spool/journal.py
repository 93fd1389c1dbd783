"""The ledger's journal: each change costs one small fsynced append, not a whole-ledger rewrite.

Why: rewriting ledger.json (temp, fsync, rename, fsync dir) on every change cost time in
proportion to the ledger (1.3 MB and ~50 ms per encounter at 2,000 encounters: quadratic over
a drain). As in Vector's disk buffer, changes go to an append-only log and a full snapshot is
written only now and then, so both the write amplification and the replay are bounded.

On disk, beside ledger.json, `ledger.journal`:
- a 28-byte header: magic, the BLAKE2b-128 digest of the exact ledger.json bytes it extends,
  CRC32 of both. A journal applies only to the ledger it names: any ledger replacement
  (compaction, an older version's save, the CLI) makes the journal stale, and a stale journal
  is ignored. That is what makes compaction crash-safe without ordering tricks;
- records: length (u32), CRC32 of the length, CRC32 of the payload, then the payload: one
  `Delta` as JSON, in the ledger's on-disk form (encounter refs, sealed ids, scrubbed text):
  the entries a change touched (put whole, or None = removed), `next_order` and any new
  notices. Puts are absolute, so replaying a record twice gives the same state.

Each change: write one record, fsync (the ledger's durability, at the cost of a few hundred
bytes). Compaction (`commit_ledger`): ledger.json replaced atomically as before, then a fresh
journal naming it (temp, fsync, rename, fsync dir). A crash between the two leaves the new
ledger and a stale journal (ignored); a crash before the rename leaves the old pair intact.
It runs when the journal outgrows max(COMPACT_MIN_BYTES, the ledger's size) or
COMPACT_RECORDS records, so each ledger byte is rewritten at most about twice and replay
reads at most about as much journal as ledger. An append that fails (disk full, EIO) may
leave a torn record: nothing is appended after it; the next save compacts instead.

Replay at open (`load_state`) treats the journal as untrusted input like the ledger: a size
cap, a record size cap, a record count cap, every payload validated strictly by the same
models and bounds, and the replayed ledger checked for consistency. A torn tail (a record cut
short by a crash: incomplete, or garbage/zeros to the end of the file) is dropped with one log
line and a notice. A bad record with more data after it is damage, not a tear: the journal and
the ledger are moved aside and the spool rebuilds from its segments, as for a bad ledger.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import struct
import time
import zlib
from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError

from edge_recorder.spool.fileops import FileOps, fsync_dir, write_all
from edge_recorder.spool.ledger import (
    DELTA_ENTRIES,
    LEDGER_NAME,
    MAX_ENTRIES,
    MAX_RECORD_BYTES,
    Delta,
    LedgerData,
    LedgerUnreadable,
    describe,
    read_ledger_bytes,
    save_ledger,
    set_aside,
)
from edge_recorder.support.logs import get_logger

log = get_logger(__name__)

JOURNAL_NAME = "ledger.journal"
MAGIC = b"ERLJRNL1"
_HEADER = struct.Struct(">8s16sI")  # magic, ledger digest, crc32(magic + digest)
_RECORD = struct.Struct(">III")  # payload length, crc32(length bytes), crc32(payload)
MAX_JOURNAL_BYTES = 32 * 1024 * 1024  # twice the ledger cap: compaction keeps it far below
MAX_RECORDS = 200_000
COMPACT_MIN_BYTES = 256 * 1024  # a small ledger still gets a journal worth keeping
COMPACT_RECORDS = 20_000


def digest(ledger_bytes: bytes) -> bytes:
    return hashlib.blake2b(ledger_bytes, digest_size=16).digest()


def _header(ledger_digest: bytes) -> bytes:
    return _HEADER.pack(MAGIC, ledger_digest, zlib.crc32(MAGIC + ledger_digest))


def encode(delta: Delta) -> bytes | None:
    """One framed record, or None when it is too big for a record (compact instead)."""
    if len(delta.encounters) > DELTA_ENTRIES or len(delta.recordings) > DELTA_ENTRIES:
        return None
    payload = delta.model_dump_json().encode()
    if len(payload) > MAX_RECORD_BYTES:
        return None
    size = len(payload).to_bytes(4, "big")
    return _RECORD.pack(len(payload), zlib.crc32(size), zlib.crc32(payload)) + payload


class JournalCorrupt(ValueError):
    """Damage (not a tear) in the journal; the message says where, never what."""


@dataclass
class Replay:
    applies: bool  # the journal names this ledger (False: stale or missing)
    records: int = 0
    torn_bytes: int = 0  # a torn tail dropped


def replay(raw: bytes, ledger_digest: bytes, data: LedgerData) -> Replay:
    """Apply the journal `raw` to `data` (the ledger whose bytes have `ledger_digest`).
    JournalCorrupt on damage; a torn tail is dropped and counted."""
    if len(raw) > MAX_JOURNAL_BYTES:
        raise JournalCorrupt(f"journal of {len(raw)} bytes is too large")
    if len(raw) < _HEADER.size:
        if raw.strip(b"\0"):
            raise JournalCorrupt("journal header is cut short")
        return Replay(applies=False)  # an empty file: nothing was ever journalled here
    magic, named, crc = _HEADER.unpack_from(raw)
    if magic != MAGIC or crc != zlib.crc32(magic + named):
        raise JournalCorrupt("journal header is damaged")
    if named != ledger_digest:
        return Replay(applies=False)
    pos, count = _HEADER.size, 0
    while pos < len(raw):
        bad = _bad_record(raw, pos)
        if bad is not None:
            if bad == "torn" or not raw[pos:].strip(b"\0"):
                return Replay(applies=True, records=count, torn_bytes=len(raw) - pos)
            raise JournalCorrupt(f"journal record {count + 1} at byte {pos}: {bad}")
        length = _RECORD.unpack_from(raw, pos)[0]
        payload = raw[pos + _RECORD.size : pos + _RECORD.size + length]
        try:
            Delta.model_validate_json(payload, strict=True).apply(data)
        except ValidationError as exc:
            raise JournalCorrupt(f"journal record {count + 1}: {describe(exc)}") from None
        pos += _RECORD.size + length
        count += 1
        if count > MAX_RECORDS:
            raise JournalCorrupt(f"journal holds more than {MAX_RECORDS} records")
    _check(data)
    return Replay(applies=True, records=count)


def _bad_record(raw: bytes, pos: int) -> str | None:
    """None if a whole, intact record starts at `pos`; "torn" if the file ends inside it
    (what a crash mid-append leaves); otherwise what is wrong with it."""
    if len(raw) - pos < _RECORD.size:
        return "torn"
    length, length_crc, payload_crc = _RECORD.unpack_from(raw, pos)
    if length_crc != zlib.crc32(length.to_bytes(4, "big")):
        return "damaged record header"
    if length > MAX_RECORD_BYTES:
        return f"record of {length} bytes is too large"
    end = pos + _RECORD.size + length
    if end > len(raw):
        return "torn"
    if zlib.crc32(raw[pos + _RECORD.size : end]) != payload_crc:
        return "torn" if end == len(raw) else "checksum mismatch"
    return None


def _check(data: LedgerData) -> None:
    """The bounds and cross-references a loaded ledger must meet, on the replayed one."""
    if len(data.encounters) > MAX_ENTRIES or len(data.recordings) > MAX_ENTRIES:
        raise JournalCorrupt("replayed ledger holds too many entries")
    try:
        data.check_consistent()
    except ValueError as exc:
        raise JournalCorrupt(f"replayed ledger is inconsistent: {exc}") from None


def _read_journal(directory: Path) -> bytes | None:
    try:
        with (directory / JOURNAL_NAME).open("rb") as f:
            size = os.fstat(f.fileno()).st_size  # read(n) allocates n bytes first
            return f.read(min(size, MAX_JOURNAL_BYTES) + 1)
    except FileNotFoundError:
        return None


def _journal_aside(directory: Path) -> str:
    aside = directory / f"{JOURNAL_NAME}.corrupt-{time.time_ns()}"
    with contextlib.suppress(FileNotFoundError):
        (directory / JOURNAL_NAME).replace(aside)
    return aside.name


def load_state(directory: Path) -> LedgerData:
    """The ledger as last changed (ledger.json + its journal), under the spool lock.
    Damage sets the files aside and returns an empty ledger that says so (never raises for
    bad data); the caller rebuilds it from the segments."""
    (directory / f".{JOURNAL_NAME}.tmp").unlink(missing_ok=True)  # an unfinished reset
    (directory / f".{LEDGER_NAME}.tmp").unlink(missing_ok=True)
    try:
        raw, data = read_ledger_bytes(directory)
    except LedgerUnreadable as exc:
        _journal_aside(directory)  # it extends a ledger that is gone: no use on its own
        return set_aside(directory, exc.reason)
    error: str | None = None
    try:
        journal = _read_journal(directory)
    except OSError as exc:
        journal, error = None, f"journal unreadable: {exc.strerror}"
    if data is None:
        if journal:
            _journal_aside(directory)
        return LedgerData()
    try:
        if error is not None:
            raise JournalCorrupt(error)
        if journal is None:
            return data
        result = replay(journal, digest(raw), data)
    except JournalCorrupt as exc:
        name = _journal_aside(directory)
        return set_aside(directory, f"{exc} (journal moved to {name})")
    if result.torn_bytes:
        log.warning("spool journal: torn tail dropped", cut_bytes=result.torn_bytes,
                    records=result.records)  # fmt: skip
        data.add_notice("torn-journal", f"dropped a torn journal tail of {result.torn_bytes} B")
    return data


def read_state(directory: Path) -> LedgerData | None:
    """The same for a reader without the lock (`spool list`): nothing is moved or changed.
    LedgerUnreadable on damage. A compaction between reading the ledger and the journal is
    seen as a journal naming another ledger: read again."""
    for _ in range(5):
        raw, data = read_ledger_bytes(directory)
        if data is None:
            return None
        journal = _read_journal(directory)
        if not journal:
            return data
        try:
            if replay(journal, digest(raw), data).applies:
                return data
        except JournalCorrupt as exc:
            raise LedgerUnreadable(directory / JOURNAL_NAME, str(exc)) from None
        if read_ledger_bytes(directory)[0] == raw:
            return data  # a stale journal, not a race
    return data


def commit_ledger(directory: Path, data: LedgerData, ops: FileOps) -> tuple[bytes, int]:
    """Compaction: replace ledger.json, then start a fresh journal naming it. Returns the
    ledger's (digest, size)."""
    payload = save_ledger(directory, data, ops)
    named = digest(payload)
    tmp = directory / f".{JOURNAL_NAME}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        write_all(ops, fd, _header(named))
        ops.fsync(fd)
    finally:
        os.close(fd)
    tmp.replace(directory / JOURNAL_NAME)
    fsync_dir(directory, ops)
    return named, len(payload)


class Journal:
    """The open journal of a running spool: appends, and when to compact."""

    def __init__(self, directory: Path, ops: FileOps) -> None:
        self._path = directory / JOURNAL_NAME
        self._ops = ops
        self._fd: int | None = None
        self._bytes = 0
        self._records = 0
        self._limit = COMPACT_MIN_BYTES

    def attach(self, ledger_size: int) -> None:
        """After `commit_ledger`: append to the fresh journal from now on."""
        self.close()
        self._fd = os.open(self._path, os.O_WRONLY | os.O_APPEND)
        self._bytes, self._records = _HEADER.size, 0
        self._limit = max(COMPACT_MIN_BYTES, ledger_size)

    def due(self) -> bool:
        """Compact rather than append: no usable journal, or it has grown past its bound."""
        return self._fd is None or self._bytes >= self._limit or self._records >= COMPACT_RECORDS

    def append(self, record: bytes) -> None:
        """Write and fsync one record. On failure the journal is dropped until the next
        compaction: nothing may follow a record that may be torn."""
        if self._fd is None:
            raise RuntimeError("the journal is not attached")
        try:
            write_all(self._ops, self._fd, record)
            self._ops.fsync(self._fd)
        except OSError:
            self.close()
            raise
        self._bytes += len(record)
        self._records += 1

    def close(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)
