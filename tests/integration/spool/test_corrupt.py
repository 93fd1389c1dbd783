"""Damaged spool files: quarantined and reported, other recordings intact, never a crash loop."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

from edge_recorder.spool import CorruptRecord, Spool
from tests.unit.spool.helpers import crash, new_id, open_spool, spool_config


def _segments(config, rid: str) -> list[Path]:  # type: ignore[no-untyped-def]
    return sorted((config.dir / "segments").glob(f"{uuid.UUID(rid).hex}-*.seg"))


def _flip(path: Path, position: int, count: int = 8) -> None:
    with path.open("r+b") as f:
        f.seek(position)
        old = f.read(count)
        f.seek(position)
        f.write(bytes(b ^ 0xA5 for b in old))


def _write(spool: Spool, enc: str, seq: int, data: bytes, close: bool = True) -> str:
    w = spool.begin_recording(enc, seq, new_id(), codec="pcm16", sample_rate=16000)
    for i in range(0, len(data), 3200):
        w.append(data[i : i + 3200])
    if close:
        w.close()
    return w.recording_id


def test_flipped_bytes_mid_segment_quarantine_one_recording_only(tmp_path: Path) -> None:
    config = spool_config(tmp_path, segment_bytes=32 * 1024)
    good, bad = os.urandom(100_000), os.urandom(100_000)
    with open_spool(config) as spool:
        r_good = _write(spool, "A", 1, good)
        r_bad = _write(spool, "A", 2, bad)
    victim = _segments(config, r_bad)[1]  # second segment of the bad recording
    _flip(victim, victim.stat().st_size // 2)
    for _ in range(2):  # reopening again and again never fails: no crash loop
        with open_spool(config) as spool:
            assert spool.read(r_good, 0, 10**6) == good
            bad_info = spool.recording(r_bad)
            assert spool.read(r_bad, 0, 20_000) == bad[:20_000]  # first segment intact
            if bad_info.quarantine is None:
                with pytest.raises(CorruptRecord, match="offset") as exc:
                    spool.read(r_bad, 0, 10**6)
                assert victim.name in str(exc.value)
            info = spool.recording(r_bad)
            assert info.quarantine is not None and victim.name in info.quarantine
            assert [r.id for r in spool.pending_recordings()] == [r_good]
            assert spool.backlog().quarantined == 1
            assert any(n.startswith("quarantine") for n in spool.notices)


def test_a_tampered_record_fails_authentication_even_with_a_fixed_crc(tmp_path: Path) -> None:
    from edge_recorder.spool.records import (
        RECORD_HEADER_BYTES,
        SEGMENT_HEADER_BYTES,
        crc32c,
        parse_record_header,
    )

    config = spool_config(tmp_path)
    with open_spool(config) as spool:
        rid = _write(spool, "A", 1, os.urandom(6400))
    seg = _segments(config, rid)[0]
    raw = bytearray(seg.read_bytes())
    start = SEGMENT_HEADER_BYTES
    parsed = parse_record_header(bytes(raw[start:]))
    assert parsed is not None
    header, _ = parsed
    body = slice(start + RECORD_HEADER_BYTES, start + header.disk_bytes)
    raw[body.start + 10] ^= 1  # an attacker edits ciphertext and recomputes the CRC
    raw[start + 36 : start + 40] = crc32c(bytes(raw[body]), crc32c(header.aad)).to_bytes(
        4, "little"
    )
    seg.write_bytes(bytes(raw))
    with open_spool(config) as spool:
        with pytest.raises(CorruptRecord, match="failed authentication"):
            spool.read(rid, 0, 100)
        assert spool.recording(rid).quarantine is not None


def test_corruption_in_a_crash_open_recording_is_reported_at_open(tmp_path: Path) -> None:
    config = spool_config(tmp_path)
    data = os.urandom(64_000)
    spool = open_spool(config)
    r_other = _write(spool, "A", 1, os.urandom(5000))
    rid = _write(spool, "A", 2, data, close=False)
    crash(spool)
    seg = _segments(config, rid)[0]
    _flip(seg, 10_000)  # inside a record, with whole records after it: not a torn tail
    size_before = seg.stat().st_size
    with open_spool(config) as spool:  # no exception escapes open
        [info] = spool.recovered_open_recordings()
        assert info.quarantine is not None and "corrupt record" in info.quarantine
        assert 0 < info.length < len(data)
        assert spool.read(rid, 0, info.length) == data[: info.length]
        assert spool.read(r_other, 0, 10) != b""
        assert any(n.startswith("corrupt") for n in spool.notices)
    assert seg.stat().st_size == size_before  # evidence kept, not truncated away


def test_torn_tail_cut_and_truncated_header_only_segment_removed(tmp_path: Path) -> None:
    config = spool_config(tmp_path, segment_bytes=10_000)
    data = os.urandom(30_000)
    spool = open_spool(config)
    rid = _write(spool, "A", 1, data, close=False)
    crash(spool)
    segs = _segments(config, rid)
    last = segs[-1]
    with last.open("r+b") as f:  # a record cut in half by a power loss
        f.truncate(last.stat().st_size - 1000)
    stub = config.dir / "segments" / f"{uuid.UUID(rid).hex}-{0xFFFFFF:016x}.seg"
    stub.write_bytes(b"ERSPSEG1" + b"\0" * 10)  # a segment torn while its header was written
    zeros = config.dir / "segments" / f"{uuid.UUID(rid).hex}-{0xFFFFFE:016x}.seg"
    zeros.write_bytes(b"\0" * 5000)  # size reached the disk, the data did not (power cut)
    with open_spool(config) as spool:
        [info] = spool.recovered_open_recordings()
        assert info.quarantine is None
        assert info.length == 9 * 3200  # the torn last record (1200 B) is gone, the rest intact
        assert spool.read(rid, 0, 10**6) == data[: info.length]
        assert any(n.startswith("torn-tail") for n in spool.notices)
    assert not stub.exists() and not zeros.exists()
