"""Replay equals what the process had in memory, compaction bounds the journal, and a change
costs the same whatever the ledger's size (issue #24: it used to rewrite the whole ledger)."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from edge_recorder.spool import Spool, SpoolError
from edge_recorder.spool import journal as journal_mod
from edge_recorder.spool.fileops import CountingFileOps
from edge_recorder.spool.journal import JOURNAL_NAME
from edge_recorder.spool.ledger import LEDGER_NAME
from edge_recorder.spool.writer import RecordingWriter
from tests.unit.spool.helpers import FakeClock, crash, new_id, open_spool, spool_config

SEED = 20261206


def _state(spool: Spool) -> tuple[object, ...]:
    """The ledger as saved (free text scrubbed of ids, as a restart reads it back), less the
    sealed ids (a fresh nonce each time they are sealed)."""
    disk = spool.ids.to_disk(spool.ledger)
    return (
        {k: v.model_dump(exclude={"sealed_id"}) for k, v in disk.encounters.items()},
        {k: v.model_dump() for k, v in disk.recordings.items()},
        disk.next_order,
        [(n.kind, n.detail, n.recording) for n in disk.notices],
    )


class _Driver:
    """Random operations through the Spool API, as capture and delivery make them."""

    def __init__(self, spool: Spool, rng: random.Random) -> None:
        self.spool, self.rng = spool, rng
        self.writers: dict[str, RecordingWriter] = {}
        self.next_cid = 0

    def step(self) -> None:
        spool, rng = self.spool, self.rng
        encs = list(spool.ledger.encounters)
        recs = [r for r in spool.recordings() if r.id not in self.writers]
        op = rng.choice(
            ["begin", "begin", "append", "close", "end", "confirm", "finalize", "fail",
             "enc-fail", "success", "quarantine", "retry", "process", "reset", "sync"]
        )  # fmt: skip
        try:
            if op == "begin" or not encs:
                cid = f"MRN-{self.next_cid}" if rng.random() < 0.6 or not encs else rng.choice(encs)
                self.next_cid += 1
                seq = len(spool.ledger.recordings_of(cid)) + 1 if cid in encs else 1
                rid = new_id()
                self.writers[rid] = spool.begin_recording(
                    cid, seq, rid, codec="pcm16", sample_rate=16000
                )
            elif op == "append" and self.writers:
                self.writers[rng.choice(list(self.writers))].append(rng.randbytes(320))
            elif op == "close" and self.writers:
                self.writers.pop(rng.choice(list(self.writers))).close()
            elif op in ("end", "enc-fail", "process") and encs:
                cid = rng.choice(encs)
                if op == "end":
                    spool.end_encounter(cid)
                elif op == "enc-fail":
                    spool.note_encounter_failure(cid, f"503 for {cid}", 2e9)
                else:  # as the delivery engine does: only once all is delivered
                    ready = spool.encounters_ready_for_processing()
                    if ready:
                        spool.mark_processing_started(rng.choice(ready).id)
            elif recs:
                rec = rng.choice(recs)
                if op == "confirm":
                    spool.confirm(rec.id, rng.randint(rec.confirmed, rec.length))
                elif op == "finalize" and rec.state == "closed":
                    spool.confirm(rec.id, rec.length)
                    spool.mark_finalized(rec.id)
                elif op == "fail":
                    spool.note_failure(rec.id, f"timeout sending {rec.encounter}", 2e9)
                elif op == "success":
                    spool.note_success(rec.id)
                elif op == "quarantine" and rng.random() < 0.3:
                    spool.quarantine(rec.id, f"refused for {rec.encounter}")
                elif op == "retry":
                    spool.retry(rec.id if rng.random() < 0.7 else None)
                elif op == "reset":
                    spool.reset_confirmed(rec.id)
                elif op == "sync":
                    spool.sync()
        except SpoolError:
            pass  # e.g. an ended encounter refuses a recording: the state rules, not the disk

    def settle(self) -> None:
        """Close every writer (a recording open at a crash is closed by recovery at open)."""
        for writer in self.writers.values():
            writer.close()
        self.writers.clear()


@pytest.mark.parametrize("compact_bytes", [journal_mod.COMPACT_MIN_BYTES, 3000])
def test_replay_after_a_crash_equals_the_state_in_memory(
    tmp_path: Path, compact_bytes: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Seeded random operations, a crash, a reopen: the same ledger, again and again (with
    compaction rare, then frequent)."""
    monkeypatch.setattr(journal_mod, "COMPACT_MIN_BYTES", compact_bytes)
    config = spool_config(tmp_path)
    rng = random.Random(SEED + compact_bytes)
    clock = FakeClock()
    journalled = 0
    for _round in range(6):
        spool = open_spool(config, monotonic=clock)
        driver = _Driver(spool, rng)
        for _ in range(rng.randint(20, 80)):
            driver.step()
            clock.advance(rng.choice([0.0, 1.0, 6.0]))  # past the confirm batching, sometimes
        driver.settle()
        spool.sync()
        clock.advance(10.0)
        spool.sync()  # batched confirmations are saved (the daemon's timer does this)
        expected = _state(spool)
        journalled += (config.dir / JOURNAL_NAME).stat().st_size > 28
        crash(spool)
        with open_spool(config, monotonic=clock) as again:
            assert _state(again) == expected
    assert journalled >= 3  # the state came from journal records, not a close's compaction


def test_a_compaction_bounds_the_journal_to_the_ledgers_size(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(journal_mod, "COMPACT_MIN_BYTES", 8192)
    config = spool_config(tmp_path)
    ops = CountingFileOps()
    with open_spool(config, ops=ops) as spool:
        rid = new_id()
        writer = spool.begin_recording("MRN-1", 1, rid, codec="pcm16", sample_rate=16000)
        writer.append(bytes(3200))
        writer.close()
        largest = 0
        for i in range(1500):
            spool.note_failure(rid, "timeout", 1e9 + i)  # one fsynced change each
            journal = (config.dir / JOURNAL_NAME).stat().st_size
            ledger = (config.dir / LEDGER_NAME).stat().st_size
            largest = max(largest, journal)
            assert journal <= max(8192, ledger) + 1024  # the bound, plus one record
        assert largest > 4096  # it did grow before it was compacted
    assert (config.dir / JOURNAL_NAME).stat().st_size == 28  # closed: compacted, empty


def test_a_compaction_also_bounds_the_number_of_records(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(journal_mod, "COMPACT_RECORDS", 10)
    config = spool_config(tmp_path)
    with open_spool(config) as spool:
        rid = new_id()
        spool.begin_recording("MRN-1", 1, rid, codec="pcm16", sample_rate=16000).close()
        for i in range(30):
            spool.note_failure(rid, "x", 1e9 + i)
            raw = (config.dir / JOURNAL_NAME).read_bytes()
            assert raw.count(b'"next_order"') <= 10


def _fill(spool: Spool, n: int) -> None:
    for i in range(n):
        spool.begin_recording(f"MRN-{i}", 1, new_id(), codec="pcm16", sample_rate=16000).close()


@pytest.mark.parametrize("resident", [10, 400])
def test_a_change_writes_the_same_few_bytes_whatever_the_ledgers_size(
    tmp_path: Path, resident: int
) -> None:
    """Issue #24: each change rewrote the whole ledger (1.3 MB at 2,000 encounters)."""
    config = spool_config(tmp_path)
    ops = CountingFileOps()
    with open_spool(config, ops=ops) as spool:
        _fill(spool, resident)
        rid = new_id()
        writer = spool.begin_recording("MRN-x", 1, rid, codec="pcm16", sample_rate=16000)
        writer.append(bytes(320))
        writer.close()
        spool.end_encounter("MRN-x")
        spool.confirm(rid, 320)
        written, fsyncs = ops.bytes_written, ops.fsyncs
        spool.mark_finalized(rid)
        assert ops.bytes_written - written < 1500  # one journal record
        assert ops.fsyncs - fsyncs == 1


def test_a_change_to_more_entries_than_a_record_holds_is_saved_by_a_compaction(
    tmp_path: Path,
) -> None:
    """Confirmations are batched: 100 recordings confirmed within 5 s are one save."""
    config = spool_config(tmp_path)
    clock = FakeClock()
    spool = open_spool(config, monotonic=clock)
    rids = []
    for i in range(100):
        rid = new_id()
        writer = spool.begin_recording(f"MRN-{i}", 1, rid, codec="pcm16", sample_rate=16000)
        writer.append(bytes(320))
        writer.close()
        rids.append(rid)
    for rid in rids:
        spool.confirm(rid, 320)
    clock.advance(6.0)
    spool.sync()
    crash(spool)
    with open_spool(config, monotonic=clock) as again:
        assert all(again.recording(rid).confirmed == 320 for rid in rids)
