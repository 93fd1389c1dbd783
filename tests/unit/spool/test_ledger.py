"""The ledger is replaced atomically: a failed save leaves the old one, junk is moved aside."""

from __future__ import annotations

import copy
import errno
import json
from pathlib import Path

import pytest

from edge_recorder.spool.fileops import CountingFileOps
from edge_recorder.spool.ledger import (
    LEDGER_NAME,
    EncounterEntry,
    LedgerData,
    RecordingEntry,
    RecordingTable,
    load_ledger,
    read_ledger_file,
    save_ledger,
)


def _ledger(n: int) -> LedgerData:
    data = LedgerData(key_id="k")
    data.encounters["e"] = EncounterEntry(id="e", order=0, created_at=1.0)
    for i in range(n):
        rid = f"00000000-0000-0000-0000-{i:012d}"
        data.recordings[rid] = RecordingEntry(
            id=rid, encounter="e", seq=i + 1, codec="pcm16", sample_rate=16000, created_at=2.0
        )
    return data


def test_round_trip_and_fresh(tmp_path: Path) -> None:
    assert load_ledger(tmp_path) == (LedgerData(), True)
    save_ledger(tmp_path, _ledger(3), CountingFileOps())
    loaded, fresh = load_ledger(tmp_path)
    assert not fresh and loaded == _ledger(3)


def test_save_fsyncs_file_and_directory(tmp_path: Path) -> None:
    ops = CountingFileOps()
    save_ledger(tmp_path, _ledger(1), ops)
    assert ops.fsyncs == 2  # the temp file, then the directory after the rename


def test_a_save_that_dies_midway_leaves_the_previous_ledger(tmp_path: Path) -> None:
    save_ledger(tmp_path, _ledger(1), CountingFileOps())
    failing = CountingFileOps(fail_at_write=1, fail_errno=errno.ENOSPC, fail_partial=10)
    with pytest.raises(OSError):
        save_ledger(tmp_path, _ledger(5), failing)
    assert (tmp_path / f".{LEDGER_NAME}.tmp").exists()  # the half-written temp file
    loaded, _ = load_ledger(tmp_path)
    assert loaded == _ledger(1)
    assert not (tmp_path / f".{LEDGER_NAME}.tmp").exists()  # cleaned at load


def test_unreadable_ledger_is_moved_aside_not_deleted(tmp_path: Path) -> None:
    (tmp_path / LEDGER_NAME).write_bytes(b'{"version": 1, "recordings": {"x": ')
    with pytest.raises(ValueError, match="unreadable"):
        read_ledger_file(tmp_path)
    data, fresh = load_ledger(tmp_path)
    assert not fresh and data.recordings == {}
    assert [n.kind for n in data.notices] == ["ledger-reset"]
    aside = list(tmp_path.glob(f"{LEDGER_NAME}.corrupt-*"))
    assert len(aside) == 1 and aside[0].read_bytes().startswith(b'{"version"')


def test_delivered_and_reclaimable_rules() -> None:
    data = _ledger(1)
    rec = next(iter(data.recordings.values()))
    assert not rec.delivered
    rec.state, rec.length, rec.confirmed = "closed", 100, 100
    assert not rec.delivered  # not finalized yet
    rec.finalized = True
    assert rec.delivered and not data.reclaimable(rec)  # processing not started
    data.encounters["e"].processing_started = True
    assert data.reclaimable(rec)
    rec.quarantine = "bad"
    assert not data.reclaimable(rec)


def test_ledger_holds_no_audio(tmp_path: Path) -> None:
    save_ledger(tmp_path, _ledger(2), CountingFileOps())
    body = json.loads((tmp_path / LEDGER_NAME).read_text())
    assert set(body) == {"version", "key_id", "next_order", "encounters", "recordings", "notices"}


def _entry(rid_n: int, encounter: str, seq: int) -> RecordingEntry:
    rid = f"00000000-0000-0000-0000-{rid_n:012d}"
    return RecordingEntry(
        id=rid, encounter=encounter, seq=seq, codec="pcm16", sample_rate=16000, created_at=2.0
    )


def test_recordings_of_uses_the_encounter_index_not_a_scan(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Asked once per recording and per encounter while a backlog drains: a scan of every
    recording each time made a 2,000-encounter drain quadratic (issue #24)."""
    data = LedgerData()
    for enc in ("a", "b"):
        data.encounters[enc] = EncounterEntry(id=enc, order=0, created_at=1.0)
    data.recordings.update({e.id: e for e in (_entry(1, "a", 2), _entry(2, "b", 1))})
    data.recordings[_entry(3, "a", 1).id] = _entry(3, "a", 1)

    def no_scan(self: object) -> None:
        raise AssertionError("recordings_of scanned the whole table")

    monkeypatch.setattr(RecordingTable, "values", no_scan)
    assert [(r.encounter, r.seq) for r in data.recordings_of("a")] == [("a", 1), ("a", 2)]
    assert [r.seq for r in data.recordings_of("b")] == [1]
    assert data.recordings_of("nobody") == []


def test_the_encounter_index_follows_every_change_to_the_table() -> None:
    table = RecordingTable({_entry(1, "a", 1).id: _entry(1, "a", 1)})
    table[_entry(2, "a", 2).id] = _entry(2, "a", 2)
    table.setdefault(_entry(3, "b", 1).id, _entry(3, "b", 1))
    table |= {_entry(4, "c", 1).id: _entry(4, "c", 1)}
    table[_entry(1, "a", 1).id] = _entry(1, "b", 2)  # replaced under another encounter
    assert sorted(table.ids_of("a")) == [_entry(2, "a", 2).id]
    assert sorted(table.ids_of("b")) == sorted([_entry(1, "a", 1).id, _entry(3, "b", 1).id])
    del table[_entry(2, "a", 2).id]
    assert table.pop(_entry(3, "b", 1).id).seq == 1
    assert table.pop("missing", None) is None
    key, popped = table.popitem()  # the newest: recording 4 of "c"
    assert key == _entry(4, "c", 1).id and popped.encounter == "c"
    assert table.ids_of("a") == [] and table.ids_of("c") == []
    assert table.ids_of("b") == [_entry(1, "a", 1).id]
    table.clear()
    assert table.ids_of("b") == [] and not table


def test_a_loaded_or_copied_ledger_keeps_the_index(tmp_path: Path) -> None:
    data = _ledger(3)
    save_ledger(tmp_path, data, CountingFileOps())
    loaded, _ = load_ledger(tmp_path)
    assert isinstance(loaded.recordings, RecordingTable)
    assert [r.seq for r in loaded.recordings_of("e")] == [1, 2, 3]
    copied = copy.deepcopy(loaded)
    assert [r.seq for r in copied.recordings_of("e")] == [1, 2, 3]
