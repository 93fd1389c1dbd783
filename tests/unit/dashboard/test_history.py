"""The SQLite history: thinning, batching, retention, downsampling, and failing writes."""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge_recorder.dashboard import history as history_module
from edge_recorder.dashboard.history import History, Sample
from tests.unit.dashboard import payloads as P


def sample(device: str, at: float, backlog: int | None = 0, level: float | None = -40.0,
           free: int | None = 10**9, temp: float | None = 50.0) -> Sample:  # fmt: skip
    return Sample(device, at, backlog, level, free, temp)


@pytest.fixture
def hist(tmp_path: Path) -> Iterator[History]:
    h = History(tmp_path / "sub" / "history.sqlite3", retention_s=7 * 86400, sample_s=60)
    h.open()
    yield h
    h.close()


def rows(path: Path, table: str = "samples") -> int:
    with sqlite3.connect(path) as conn:
        return int(conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])


def test_open_creates_a_wal_database_with_a_version(hist: History) -> None:
    with sqlite3.connect(hist.path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 1


def test_offer_queues_and_only_flush_writes(hist: History) -> None:
    assert hist.offer(sample("a", P.T0))
    hist.offer_event("a", P.event("a", 1))
    assert rows(hist.path) == 0 and rows(hist.path, "events") == 0
    assert hist.pending == 2
    assert hist.flush() == 2
    assert rows(hist.path) == 1 and rows(hist.path, "events") == 1
    assert hist.pending == 0
    assert hist.flush() == 0  # nothing queued: no transaction at all


def test_one_sample_per_device_per_sample_s(hist: History) -> None:
    offered = [hist.offer(sample("a", P.T0 + s)) for s in (0, 30, 59.9, 60, 90, 125)]
    assert offered == [True, False, False, True, False, True]
    assert hist.offer(sample("b", P.T0 + 30))  # each device has its own buckets
    assert hist.flush() == 4
    series = hist.series("a", P.T0 - 1, P.T0 + 200)
    assert series["t"] == [P.T0, P.T0 + 60, P.T0 + 125]
    assert len(hist.series("b", P.T0 - 1, P.T0 + 200)["t"]) == 1


def test_series_returns_every_column_with_nulls(hist: History) -> None:
    hist.offer(sample("a", P.T0, backlog=5, level=None, free=None, temp=61.5))
    hist.offer(sample("a", P.T0 + 60, backlog=7, level=-30.0, free=123, temp=None))
    hist.flush()
    assert hist.series("a", P.T0, P.T0 + 60) == {
        "t": [P.T0, P.T0 + 60],
        "backlog_bytes": [5, 7],
        "mic_level_dbfs": [None, -30.0],
        "disk_free_bytes": [None, 123],
        "cpu_temp_c": [61.5, None],
    }
    assert hist.series("a", P.T0 + 61, P.T0 + 100)["t"] == []
    assert hist.series("nobody", P.T0, P.T0 + 60)["t"] == []


def test_series_is_downsampled_to_max_points_keeping_the_worst(tmp_path: Path) -> None:
    h = History(tmp_path / "h.sqlite3", retention_s=86400, sample_s=1)
    h.open()
    for i in range(1000):
        h.offer(sample("a", P.T0 + i, backlog=i, level=-float(i % 50), free=10**6 - i,
                       temp=40.0 + (i % 10)))  # fmt: skip
    h.flush()
    full = h.series("a", P.T0, P.T0 + 999, max_points=1000)
    assert len(full["t"]) == 1000
    small = h.series("a", P.T0, P.T0 + 999, max_points=100)
    assert 95 <= len(small["t"]) <= 100
    t = [x for x in small["t"] if x is not None]
    assert t == sorted(t)
    assert small["backlog_bytes"][0] == 9  # highest of the first 10 s
    assert small["disk_free_bytes"][0] == 10**6 - 9  # lowest
    assert small["cpu_temp_c"][0] == 49.0
    assert small["backlog_bytes"][-1] == 999
    assert len(h.series("a", P.T0, P.T0 + 999, max_points=1)["t"]) == 1
    h.close()


def test_events_newest_first_deduplicated_and_limited(hist: History) -> None:
    for seq in range(1, 6):
        hist.offer_event("a", P.event("a", seq, at=P.T0 + seq))
    hist.offer_event("a", P.event("a", 3, at=P.T0 + 3))  # a QoS 1 repeat
    hist.offer_event("b", P.event("b", 1))
    hist.flush()
    assert [e["seq"] for e in hist.events("a")] == [5, 4, 3, 2, 1]
    assert [e["seq"] for e in hist.events("a", limit=2)] == [5, 4]
    assert hist.events("a")[0] == P.event("a", 5, at=P.T0 + 5)
    assert len(hist.events("b")) == 1 and hist.events("c") == []


def test_prune_drops_rows_past_the_retention(tmp_path: Path) -> None:
    h = History(tmp_path / "h.sqlite3", retention_s=3600, sample_s=60)
    h.open()
    for at in (P.T0 - 7200, P.T0 - 3000, P.T0):
        h.offer(sample("a", at))
        h.offer_event("a", P.event("a", int(at - P.T0 + 10000), at=at))
    h.offer(sample("b", P.T0 - 4000))
    h.flush()
    assert h.prune(P.T0) == 3  # two samples, one event
    assert h.series("a", 0, P.T0 + 1)["t"] == [P.T0 - 3000, P.T0]
    assert h.series("b", 0, P.T0 + 1)["t"] == []
    assert len(h.events("a")) == 2
    assert h.prune(P.T0) == 0
    h.close()


def test_history_survives_a_reopen(tmp_path: Path) -> None:
    path = tmp_path / "h.sqlite3"
    h = History(path, retention_s=3600, sample_s=60)
    h.open()
    h.offer(sample("a", P.T0))
    h.flush()
    h.close()
    again = History(path, retention_s=3600, sample_s=60)
    again.open()
    assert again.series("a", P.T0, P.T0)["t"] == [P.T0]
    again.offer(sample("b", P.T0))
    assert again.flush() == 1
    assert again.series("b", P.T0, P.T0)["t"] == [P.T0]
    again.close()


def test_an_unknown_format_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "h.sqlite3"
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA user_version=99")
    with pytest.raises(RuntimeError, match="format 99"):
        History(path, retention_s=1, sample_s=1).open()


@contextlib.contextmanager
def captured(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """This module's records in caplog, whatever another test did to the package logger."""
    logger = logging.getLogger("edge_recorder.dashboard.history")
    saved = (logger.level, logger.propagate)
    logger.addHandler(caplog.handler)
    caplog.handler.setLevel(logging.INFO)
    logger.setLevel(logging.INFO)
    logger.propagate = False  # caplog's root handler would see each record a second time
    try:
        yield
    finally:
        logger.removeHandler(caplog.handler)
        logger.level, logger.propagate = saved


def test_a_locked_database_keeps_the_rows_and_does_not_raise(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    h = History(tmp_path / "h.sqlite3", retention_s=3600, sample_s=60, busy_timeout_s=0.05)
    h.open()
    other = sqlite3.connect(h.path, isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")  # another writer holds the database
    with captured(caplog):
        h.offer(sample("a", P.T0))
        h.offer_event("a", P.event("a", 1))
        assert h.flush() == 0
        h.offer(sample("a", P.T0 + 60))
        assert h.flush() == 0
        assert h.pending == 3
        other.execute("COMMIT")
        assert h.flush() == 3
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1  # once per run of failures, not per flush
    assert "history write failed" in warnings[0].getMessage()
    assert h.series("a", 0, P.T0 + 60)["t"] == [P.T0, P.T0 + 60]
    assert len(h.events("a")) == 1
    other.close()
    h.close()


def test_a_full_disk_keeps_the_rows_and_does_not_raise(hist: History) -> None:
    hist.offer(sample("a", P.T0))
    assert hist.flush() == 1
    conn = hist._conn
    assert conn is not None
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    conn.execute(f"PRAGMA max_page_count={pages}")  # the file may not grow: SQLITE_FULL
    for i in range(1, 3000):
        hist.offer(sample(f"dev-{i}", P.T0))
    assert hist.flush() == 0
    assert hist.pending == 2999
    conn.execute("PRAGMA max_page_count=1073741823")
    assert hist.flush() == 2999
    assert hist.series("dev-2999", P.T0, P.T0)["t"] == [P.T0]


def test_pending_rows_are_bounded_dropping_the_oldest(
    hist: History, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(history_module, "MAX_PENDING", 10)
    hist.close()  # every flush fails: nothing to write to
    for i in range(15):
        hist.offer(sample(f"d{i}", P.T0))
    assert hist.flush() == 0
    assert hist.pending == 10
    assert hist.dropped == 5
    hist.open()
    assert hist.flush() == 10
    assert hist.series("d4", P.T0, P.T0)["t"] == []  # the oldest five went
    assert hist.series("d5", P.T0, P.T0)["t"] == [P.T0]


def test_offer_from_one_thread_while_another_flushes(hist: History) -> None:
    stop = threading.Event()
    written: list[int] = []

    def worker() -> None:
        while not stop.is_set():
            written.append(hist.flush())

    thread = threading.Thread(target=worker)
    thread.start()
    accepted = sum(hist.offer(sample(f"d{i % 50}", P.T0 + 60 * (i // 50))) for i in range(5000))
    stop.set()
    thread.join()
    written.append(hist.flush())
    assert accepted == 5000
    assert sum(written) == 5000 == rows(hist.path)
