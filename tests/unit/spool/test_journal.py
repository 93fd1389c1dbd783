"""The ledger journal, by failure class (as Vector's disk buffer tests group theirs): a torn
tail, a flipped byte mid-journal, records that break the bounds, a crash between an append and
a compaction or during one, and a journal that names another ledger."""

from __future__ import annotations

import errno
import logging
import shutil
import struct
import zlib
from pathlib import Path

import pytest

from edge_recorder.config.model import SpoolConfig
from edge_recorder.spool import Spool, SpoolError
from edge_recorder.spool import journal as journal_mod
from edge_recorder.spool.admin import snapshot
from edge_recorder.spool.fileops import CountingFileOps
from edge_recorder.spool.journal import JOURNAL_NAME, read_state
from edge_recorder.spool.ledger import LEDGER_NAME, LedgerData
from tests.unit.spool.helpers import crash, new_id, open_spool, spool_config

HEADER_BYTES = 28
RECORD_HEADER = struct.Struct(">III")
CID = "MRN-4711-V2"  # looks like an EHR id: must never be on disk in plain text


def _state(ledger: LedgerData) -> tuple[object, ...]:
    """What must survive a restart: every entry, the order counter, the notices."""
    return (
        {k: v.model_dump() for k, v in ledger.encounters.items()},
        {k: v.model_dump() for k, v in ledger.recordings.items()},
        ledger.next_order,
        [(n.kind, n.detail, n.recording) for n in ledger.notices],
    )


def _record(spool: Spool, cid: str, seq: int = 1) -> str:
    rid = new_id()
    writer = spool.begin_recording(cid, seq, rid, codec="pcm16", sample_rate=16000)
    writer.append(b"\x01" * 3200)
    writer.close()
    return rid


def _journal(config: SpoolConfig) -> Path:
    return config.dir / JOURNAL_NAME


def _record_offsets(raw: bytes) -> list[int]:
    """Where each record starts (the journal as written, trusted here)."""
    offsets, pos = [], HEADER_BYTES
    while pos < len(raw):
        offsets.append(pos)
        pos += RECORD_HEADER.size + RECORD_HEADER.unpack_from(raw, pos)[0]
    return offsets


def _filled(tmp_path: Path) -> tuple[SpoolConfig, str, list[tuple[object, ...]]]:
    """A crashed spool whose last changes are only in the journal; the state after each."""
    config = spool_config(tmp_path)
    spool = open_spool(config)
    states = [_state(spool.ledger)]
    rid = _record(spool, CID)
    spool.end_encounter(CID)
    states.append(_state(spool.ledger))
    spool.confirm(rid, spool.recording(rid).length)
    spool.mark_finalized(rid)
    states.append(_state(spool.ledger))
    crash(spool)
    return config, rid, states


def _copy(config: SpoolConfig, where: Path) -> SpoolConfig:
    """The crashed spool (directory and key) as it is, somewhere else."""
    copy = spool_config(where)
    shutil.copytree(config.dir, copy.dir)
    shutil.copy2(config.key_file, copy.key_file)
    return copy


# ---- a torn tail: dropped, with one log line --------------------------------------------------
def test_every_cut_inside_the_last_record_drops_just_that_record(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config, _, states = _filled(tmp_path / "filled")
    raw = _journal(config).read_bytes()
    last = _record_offsets(raw)[-1]
    cuts = [last + 1, last + RECORD_HEADER.size - 1, last + RECORD_HEADER.size + 1, len(raw) - 1]
    for n, cut in enumerate(cuts):
        copy = _copy(config, tmp_path / f"cut{n}")
        _journal(copy).write_bytes(raw[:cut])
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="edge_recorder"), open_spool(copy) as spool:
            assert _state(spool.ledger)[:3] == states[-2][:3]  # the finalize is gone, no more
            assert any(n.startswith("torn-journal") for n in spool.notices)
            torn = [r for r in caplog.records if "torn tail" in r.getMessage()]
            assert len(torn) == 1 and torn[0].levelno == logging.WARNING
            assert not list(copy.dir.glob("*.corrupt-*"))


def test_zeros_after_the_last_record_are_a_tear_not_damage(tmp_path: Path) -> None:
    config, _, states = _filled(tmp_path)
    with _journal(config).open("ab") as f:
        f.write(bytes(4096))  # what a power cut can leave: the size grew, the data did not
    with open_spool(config) as spool:
        assert _state(spool.ledger)[:3] == states[-1][:3]
        assert any(n.startswith("torn-journal") for n in spool.notices)


# ---- a flipped byte mid-journal: damage, set aside, rebuilt from the segments ---------------
@pytest.mark.parametrize("where", ["length", "length-crc", "payload", "journal-header"])
def test_a_flipped_byte_mid_journal_sets_it_aside_and_rebuilds(
    tmp_path: Path, where: str, caplog: pytest.LogCaptureFixture
) -> None:
    config, rid, _ = _filled(tmp_path)
    raw = bytearray(_journal(config).read_bytes())
    first = _record_offsets(bytes(raw))[0]
    at = {
        "length": first + 3,
        "length-crc": first + 5,
        "payload": first + RECORD_HEADER.size + 10,
        "journal-header": 3,
    }[where]
    raw[at] ^= 0x40
    _journal(config).write_bytes(bytes(raw))
    with caplog.at_level(logging.INFO, logger="edge_recorder"):
        spool = open_spool(config)
    with spool:
        assert list(config.dir.glob(f"{JOURNAL_NAME}.corrupt-*"))  # kept for inspection
        assert list(config.dir.glob(f"{LEDGER_NAME}.corrupt-*"))
        assert any(n.startswith("ledger-reset") for n in spool.notices)
        info = spool.recording(rid)  # rebuilt from its segments and sealed header
        assert info.encounter == CID and info.length == 3200 and info.quarantine is None
        assert CID not in caplog.text  # the reason says where, never what


def test_a_record_that_breaks_the_models_bounds_is_damage(tmp_path: Path) -> None:
    """A record with a valid checksum is still untrusted: its fields are validated."""
    config, rid, _ = _filled(tmp_path)
    payload = b'{"next_order": -5}'
    size = len(payload).to_bytes(4, "big")
    with _journal(config).open("ab") as f:
        f.write(RECORD_HEADER.pack(len(payload), zlib.crc32(size), zlib.crc32(payload)))
        f.write(payload)
        f.write(RECORD_HEADER.pack(2, zlib.crc32((2).to_bytes(4, "big")), zlib.crc32(b"{}")))
        f.write(b"{}")
    with open_spool(config) as spool:
        assert list(config.dir.glob(f"{JOURNAL_NAME}.corrupt-*"))
        assert spool.recording(rid).length == 3200


def test_a_record_over_the_size_cap_is_damage_and_never_allocated(tmp_path: Path) -> None:
    config, rid, _ = _filled(tmp_path)
    huge = (1 << 31).to_bytes(4, "big")
    with _journal(config).open("ab") as f:
        f.write(RECORD_HEADER.pack(1 << 31, zlib.crc32(huge), 0) + b"x" * 100)
    with open_spool(config) as spool:
        assert list(config.dir.glob(f"{JOURNAL_NAME}.corrupt-*"))
        assert spool.recording(rid).length == 3200


def test_a_journal_over_its_cap_is_damage(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config, rid, _ = _filled(tmp_path)
    monkeypatch.setattr(journal_mod, "MAX_JOURNAL_BYTES", HEADER_BYTES + 10)
    with open_spool(config) as spool:
        assert list(config.dir.glob(f"{JOURNAL_NAME}.corrupt-*"))
        assert spool.recording(rid).length == 3200


def test_a_journal_that_names_another_ledger_is_ignored(tmp_path: Path) -> None:
    """What a crash between the two halves of a compaction leaves (or an older version's or
    the CLI's save): the journal extends a ledger.json that is no longer there."""
    config, _, _ = _filled(tmp_path)
    before = read_state(config.dir)
    assert before is not None and before.encounters  # from the journal: the ledger has none
    ledger = config.dir / LEDGER_NAME
    ledger.write_bytes(ledger.read_bytes() + b" ")  # the same ledger, other bytes: another one
    again = read_state(config.dir)
    assert again is not None and not again.encounters and not again.recordings


# ---- a crash between an append and a compaction, and during a compaction ------------------
def test_a_crash_after_appends_before_any_compaction_loses_nothing(tmp_path: Path) -> None:
    config, _, states = _filled(tmp_path)
    assert len(_record_offsets(_journal(config).read_bytes())) >= 5  # all in the journal
    with open_spool(config) as spool:
        assert _state(spool.ledger)[:3] == states[-1][:3]


@pytest.mark.parametrize("failing_write", [1, 2])  # 1: the ledger temp file, 2: the journal's
def test_a_compaction_that_fails_midway_then_a_crash_loses_nothing(
    tmp_path: Path, failing_write: int
) -> None:
    config = spool_config(tmp_path)
    ops = CountingFileOps()
    spool = open_spool(config, ops=ops)
    rid = _record(spool, CID)
    spool.end_encounter(CID)
    spool.note_failure(rid, "timeout", 2e9)
    ops.fail_at_write, ops.fail_errno, ops.fail_partial = ops.writes + failing_write, errno.EIO, 7
    with pytest.raises(SpoolError):
        spool.retry(None)  # an operator action: saved by a compaction, which fails midway
    crash_now = _state(spool.ledger)
    spool.note_failure(rid, "timeout", 2e9 + 1)  # the next change (and the retry) is saved
    expected = _state(spool.ledger)
    assert expected != crash_now
    crash(spool)
    with open_spool(config) as again:
        assert _state(again.ledger)[:3] == expected[:3]
        assert again.recording(rid).length == 3200
        assert not list(config.dir.glob("*.corrupt-*"))


def test_after_a_failed_append_the_next_change_compacts_and_nothing_follows_a_torn_record(
    tmp_path: Path,
) -> None:
    config = spool_config(tmp_path)
    ops = CountingFileOps()
    spool = open_spool(config, ops=ops)
    rid = _record(spool, CID)
    ops.fail_at_write, ops.fail_errno, ops.fail_partial = ops.writes + 1, errno.ENOSPC, 9
    with pytest.raises(SpoolError):
        spool.end_encounter(CID)  # a torn record is left at the end of the journal
    spool.confirm(rid, 3200)
    spool.mark_finalized(rid)  # compacts: the ended flag and the finalize are saved
    expected = _state(spool.ledger)
    crash(spool)
    with open_spool(config) as again:
        assert _state(again.ledger)[:3] == expected[:3]
        assert not list(config.dir.glob("*.corrupt-*"))


# ---- no plain id on disk, and readers without the lock -------------------------------------
def test_the_journal_holds_no_correlation_id(tmp_path: Path) -> None:
    config, _, _ = _filled(tmp_path)
    raw = _journal(config).read_bytes()
    assert len(_record_offsets(raw)) >= 5
    assert CID.encode() not in raw


def test_the_cli_snapshot_sees_changes_still_only_in_the_journal(tmp_path: Path) -> None:
    config = spool_config(tmp_path)
    with open_spool(config) as spool:
        rid = _record(spool, CID)
        spool.quarantine(rid, f"service said no to {CID}")
        snap = snapshot(config.dir)
        entry = snap.ledger.recordings[rid]
        assert entry.quarantine is not None and CID not in entry.quarantine
        assert entry.state == "closed"
