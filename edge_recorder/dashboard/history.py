"""Per-device time series and events for the device page's charts (SQLite, batched).

Writes are the cost that grows with the fleet, so they are thinned and batched: `offer` keeps at
most one sample per device per `sample_s` (by the sample's time bucket) and only queues it;
`flush`, called from one worker thread every few seconds, writes everything queued in one
transaction. Device ids are stored once in `devices` and samples reference them by a small
integer in a WITHOUT ROWID table keyed (device, t), so a device's range is one index seek and
the pruning of old rows is one range delete per device (no second index to maintain). Times are
whole seconds, the microphone level and CPU temperature integer tenths: SQLite stores small
integers in 1-2 bytes where a REAL takes 8, about a third less disk for the same charts.

A write that fails (disk full, a locked database) never reaches the caller: the rows stay
queued for the next flush (at most 200 000; the oldest beyond are dropped and counted in
`dropped`) and one warning is logged per run of failures.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path

from edge_recorder.dashboard.validate import parse_at
from edge_recorder.support.logs import get_logger

log = get_logger(__name__)

SCHEMA_VERSION = 1
MAX_PENDING = 200_000
SERIES = ("backlog_bytes", "mic_level_dbfs", "disk_free_bytes", "cpu_temp_c")
_SCHEMA = """
CREATE TABLE IF NOT EXISTS devices (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);
CREATE TABLE IF NOT EXISTS samples (
    dev INTEGER NOT NULL, t INTEGER NOT NULL, backlog_bytes INTEGER, mic_level_ddbfs INTEGER,
    disk_free_bytes INTEGER, cpu_temp_dc INTEGER, PRIMARY KEY (dev, t)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS events (
    dev INTEGER NOT NULL, t REAL NOT NULL, instance TEXT NOT NULL, seq INTEGER NOT NULL,
    body TEXT NOT NULL, UNIQUE (dev, instance, seq)
);
CREATE INDEX IF NOT EXISTS events_by_time ON events (dev, t);
"""
# Downsampling keeps what a problem looks like: the highest backlog and temperature, the lowest
# free disk, the mean microphone level of each bucket.
_BUCKETED = (
    "SELECT AVG(t), MAX(backlog_bytes), ROUND(AVG(mic_level_ddbfs)) / 10.0, "
    "MIN(disk_free_bytes), MAX(cpu_temp_dc) / 10.0 "
    "FROM samples WHERE dev = ? AND t >= ? AND t <= ? "
    "GROUP BY MIN(CAST((t - ?) / ? AS INTEGER), ?) ORDER BY 1"
)


SampleRow = tuple[str, int, int | None, int | None, int | None, int | None]
EventRow = tuple[str, float, str, int, str]


def _tenths(value: float | None) -> int | None:
    return None if value is None else round(value * 10)


@dataclass(frozen=True)
class Sample:
    """One point of a device's charts; None where the status had no value."""

    device_id: str
    at: float
    backlog_bytes: int | None
    mic_level_dbfs: float | None
    disk_free_bytes: int | None
    cpu_temp_c: float | None


class History:
    """The SQLite history file; offer from the loop thread, everything else from one worker."""

    def __init__(
        self, path: Path, *, retention_s: float, sample_s: float, busy_timeout_s: float = 5.0
    ) -> None:
        self.path = path
        self.retention_s = retention_s
        self.sample_s = sample_s
        self.busy_timeout_s = busy_timeout_s
        self.dropped = 0
        self._conn: sqlite3.Connection | None = None
        self._db_lock = threading.Lock()
        self._pending_lock = threading.Lock()
        self._samples: list[SampleRow] = []
        self._events: list[EventRow] = []
        self._bucket: dict[str, int] = {}
        self._ids: dict[str, int] = {}
        self._failing = False

    def open(self) -> None:
        """Create the file and schema if needed; WAL with synchronous=NORMAL."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(
            self.path, timeout=self.busy_timeout_s, check_same_thread=False, isolation_level=None
        )
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version not in (0, SCHEMA_VERSION):
            conn.close()
            raise RuntimeError(f"{self.path}: history format {version} is not {SCHEMA_VERSION}")
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.executescript(_SCHEMA)
        conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        self._ids = dict(
            (name, ident) for ident, name in conn.execute("SELECT id, name FROM devices")
        )
        self._conn = conn

    def close(self) -> None:
        """Close the file (pending rows not flushed are lost: flush first)."""
        with self._db_lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    @property
    def pending(self) -> int:
        with self._pending_lock:
            return len(self._samples) + len(self._events)

    def offer(self, sample: Sample) -> bool:
        """Queue a sample unless this device already has one in this sample_s bucket."""
        bucket = int(sample.at // self.sample_s)
        if self._bucket.get(sample.device_id) == bucket:
            return False
        self._bucket[sample.device_id] = bucket
        row = (
            sample.device_id, int(sample.at), sample.backlog_bytes, _tenths(sample.mic_level_dbfs),
            sample.disk_free_bytes, _tenths(sample.cpu_temp_c),
        )  # fmt: skip
        with self._pending_lock:
            self._samples.append(row)
            self._bound()
        return True

    def offer_event(self, device_id: str, event: dict[str, object]) -> None:
        """Queue an event (a schema-valid event dict); repeats are ignored when written."""
        try:
            at = parse_at(str(event.get("at")))
        except ValueError:
            return
        seq = event.get("seq")
        row = (device_id, at, str(event.get("instance")), seq if isinstance(seq, int) else 0,
               json.dumps(event, separators=(",", ":")))  # fmt: skip
        with self._pending_lock:
            self._events.append(row)
            self._bound()

    def _bound(self) -> None:
        over = len(self._samples) + len(self._events) - MAX_PENDING
        if over > 0:  # the database has been failing for a long time: drop the oldest
            cut = min(over, len(self._samples))
            del self._samples[:cut]
            del self._events[: over - cut]
            self.dropped += over

    def _id(self, conn: sqlite3.Connection, name: str) -> int:
        ident = self._ids.get(name)
        if ident is None:
            conn.execute("INSERT OR IGNORE INTO devices (name) VALUES (?)", (name,))
            ident = int(
                conn.execute("SELECT id FROM devices WHERE name = ?", (name,)).fetchone()[0]
            )
            self._ids[name] = ident
        return ident

    def flush(self) -> int:
        """Write everything queued in one transaction; rows written (0 on failure, kept queued)."""
        with self._pending_lock:
            samples, self._samples = self._samples, []
            events, self._events = self._events, []
        if not samples and not events:
            return 0
        with self._db_lock:
            conn = self._conn
            if conn is None:
                self._requeue(samples, events)
                return 0
            known = dict(self._ids)
            try:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    conn.executemany(
                        "INSERT OR REPLACE INTO samples VALUES (?, ?, ?, ?, ?, ?)",
                        [(self._id(conn, r[0]), *r[1:]) for r in samples],
                    )
                    conn.executemany(
                        "INSERT OR IGNORE INTO events (dev, t, instance, seq, body) "
                        "VALUES (?, ?, ?, ?, ?)",
                        [(self._id(conn, r[0]), *r[1:]) for r in events],
                    )
                    conn.execute("COMMIT")
                except BaseException:
                    if conn.in_transaction:  # SQLite may have rolled back already (disk full)
                        conn.execute("ROLLBACK")
                    raise
            except sqlite3.Error as exc:
                self._ids = known  # ids inserted by the rolled-back transaction do not exist
                self._requeue(samples, events)
                if not self._failing:
                    log.warning(
                        "history write failed; rows kept for the next flush",
                        error=type(exc).__name__,
                        reason=str(exc)[:100],
                        pending=self.pending,
                    )
                self._failing = True
                return 0
        if self._failing:
            log.info("history writes work again", rows=len(samples) + len(events))
        self._failing = False
        return len(samples) + len(events)

    def _requeue(self, samples: list[SampleRow], events: list[EventRow]) -> None:
        with self._pending_lock:
            self._samples[:0] = samples
            self._events[:0] = events
            self._bound()

    def prune(self, now: float) -> int:
        """Delete rows older than the retention; returns how many."""
        cutoff = now - self.retention_s
        with self._db_lock:
            conn = self._conn
            if conn is None:
                return 0
            try:
                conn.execute("BEGIN IMMEDIATE")
                deleted = 0
                for ident in list(self._ids.values()):
                    deleted += conn.execute(
                        "DELETE FROM samples WHERE dev = ? AND t < ?", (ident, cutoff)
                    ).rowcount
                    deleted += conn.execute(
                        "DELETE FROM events WHERE dev = ? AND t < ?", (ident, cutoff)
                    ).rowcount
                conn.execute("COMMIT")
            except sqlite3.Error as exc:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                log.warning("history prune failed", error=type(exc).__name__)
                return 0
        return deleted

    def series(
        self, device_id: str, since: float, until: float, max_points: int = 1440
    ) -> dict[str, list[float | None]]:
        """Chart columns between since and until, at most max_points (bucketed when more)."""
        max_points = max(1, max_points)
        out: dict[str, list[float | None]] = {"t": [], **{name: [] for name in SERIES}}
        with self._db_lock:
            ident = self._ids.get(device_id)
            if self._conn is None or ident is None:
                return out
            args = (ident, since, until)
            (count,) = self._conn.execute(
                "SELECT COUNT(*) FROM samples WHERE dev = ? AND t >= ? AND t <= ?", args
            ).fetchone()
            if count <= max_points:
                rows = self._conn.execute(
                    "SELECT t, backlog_bytes, mic_level_ddbfs / 10.0, disk_free_bytes, "
                    "cpu_temp_dc / 10.0 "
                    "FROM samples WHERE dev = ? AND t >= ? AND t <= ? ORDER BY t",
                    args,
                ).fetchall()
            else:
                width = max((until - since) / max_points, 1e-9)
                bucketed = (*args, since, width, max_points - 1)
                rows = self._conn.execute(_BUCKETED, bucketed).fetchall()
        for row in rows:
            for name, value in zip(("t", *SERIES), row, strict=True):
                out[name].append(value)
        return out

    def events(self, device_id: str, limit: int = 200) -> list[dict[str, object]]:
        """Stored events of a device, newest first."""
        with self._db_lock:
            ident = self._ids.get(device_id)
            if self._conn is None or ident is None:
                return []
            rows = self._conn.execute(
                "SELECT body FROM events WHERE dev = ? ORDER BY t DESC, rowid DESC LIMIT ?",
                (ident, limit),
            ).fetchall()
        return [json.loads(body) for (body,) in rows]
