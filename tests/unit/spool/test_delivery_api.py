"""What the delivery engine relies on: order, exact reads, tailing, acks, retry state, reclaim."""

from __future__ import annotations

import asyncio
import os
import threading
from pathlib import Path

import pytest

from edge_recorder.spool import SpoolError, SpoolFull, SpoolRefused, core
from edge_recorder.spool.fileops import CountingFileOps
from edge_recorder.spool.lock import submit_request
from tests.unit.spool.helpers import crash, new_id, open_spool, spool_config


def _closed(spool, enc: str, seq: int, data: bytes) -> str:  # type: ignore[no-untyped-def]
    w = spool.begin_recording(enc, seq, new_id(), codec="pcm16", sample_rate=16000)
    w.append(data)
    w.close()
    return str(w.recording_id)


def _deliver(spool, rid: str) -> None:  # type: ignore[no-untyped-def]
    spool.confirm(rid, spool.recording(rid).length)
    spool.mark_finalized(rid)


def test_pending_is_oldest_encounter_first_then_by_seq(tmp_path: Path) -> None:
    with open_spool(spool_config(tmp_path)) as spool:
        b2 = _closed(spool, "B", 2, b"x")
        a1 = _closed(spool, "A", 1, b"x")  # A is newer than B
        b1 = _closed(spool, "B", 1, b"x")
        assert [r.id for r in spool.pending_recordings()] == [b1, b2, a1]


def test_open_only_lists_the_recordings_still_being_written_in_the_same_order(
    tmp_path: Path,
) -> None:
    with open_spool(spool_config(tmp_path)) as spool:
        _closed(spool, "B", 1, b"x")
        b2 = spool.begin_recording("B", 2, new_id(), codec="pcm16", sample_rate=16000)
        _closed(spool, "A", 1, b"x")
        a2 = spool.begin_recording("A", 2, new_id(), codec="pcm16", sample_rate=16000)
        everything = spool.pending_recordings()
        assert (
            [r.id for r in spool.pending_recordings(open_only=True)]
            == [r.id for r in everything if r.state == "open"]
            == [b2.recording_id, a2.recording_id]
        )


class _CountingDict(dict[str, object]):
    scans = 0

    def values(self):  # type: ignore[no-untyped-def,override]
        self.scans += 1
        return super().values()


def test_open_only_follows_opens_and_closes_without_a_pass_over_every_recording(
    tmp_path: Path,
) -> None:
    """The live task asks on every wake-up: offline with thousands waiting, a pass over all
    of them each time was what a backlog added to an idle device's CPU (issue #24)."""
    with open_spool(spool_config(tmp_path)) as spool:
        for i in range(50):
            _closed(spool, f"E{i:02}", 1, b"x")
        spool._live = counting = _CountingDict(spool._live)
        for _ in range(20):
            assert spool.pending_recordings(open_only=True) == []
        assert counting.scans <= 1  # once per ledger change, not once per question
        w = spool.begin_recording("N", 1, new_id(), codec="pcm16", sample_rate=16000)
        assert [r.id for r in spool.pending_recordings(open_only=True)] == [w.recording_id]
        w.append(b"y")
        assert [r.length for r in spool.pending_recordings(open_only=True)] == [1]
        w.close()
        assert spool.pending_recordings(open_only=True) == []


def test_open_only_lists_a_recording_a_crash_left_open_until_it_is_closed(
    tmp_path: Path,
) -> None:
    config = spool_config(tmp_path)
    spool = open_spool(config)
    w = spool.begin_recording("C", 1, new_id(), codec="pcm16", sample_rate=16000)
    w.append(b"z" * 10)
    w.flush()
    crash(spool)
    with open_spool(config) as again:
        assert [r.id for r in again.pending_recordings(open_only=True)] == [w.recording_id]
        again.close_recovered(w.recording_id)
        assert again.pending_recordings(open_only=True) == []


def test_iter_pending_builds_each_record_only_when_reached_and_skips_what_changed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A delivery pass stops at the first network failure: with thousands waiting it must not
    build a record for each one first (that was half an offline device's idle CPU)."""
    from edge_recorder.spool import store

    with open_spool(spool_config(tmp_path)) as spool:
        ids = [_closed(spool, f"E{i:02}", 1, b"x") for i in range(20)]
        built: list[str] = []
        original = store.RecordingInfo.of
        monkeypatch.setattr(
            store.RecordingInfo, "of", lambda live: built.append(live.entry.id) or original(live)
        )
        pending = spool.iter_pending()
        assert next(pending).id == ids[0]
        assert built == [ids[0]]
        _deliver(spool, ids[1])  # delivered between two steps of a pass: skipped
        built.clear()
        assert next(pending).id == ids[2]
        assert built == [ids[2]]
        assert [r.id for r in spool.pending_recordings()] == [ids[0], *ids[2:]]


def test_next_attempt_due_is_the_earliest_back_off_of_closed_pending_recordings(
    tmp_path: Path,
) -> None:
    with open_spool(spool_config(tmp_path)) as spool:
        a, b = _closed(spool, "A", 1, b"x"), _closed(spool, "B", 1, b"x")
        assert spool.next_attempt_due() is None  # nothing backed off
        spool.note_failure(a, "unavailable", next_attempt_at=1030.0)
        spool.note_failure(b, "unavailable", next_attempt_at=1010.0)
        assert spool.next_attempt_due() == 1010.0
        assert spool.next_attempt_due(skip={b}) == 1030.0  # b is being tried right now
        _deliver(spool, a)
        assert spool.next_attempt_due(skip={b}) is None  # delivered: nothing to wait for


def test_reads_from_any_offset_return_exactly_the_bytes(tmp_path: Path) -> None:
    data = os.urandom(50_000)
    with open_spool(spool_config(tmp_path, segment_bytes=8000)) as spool:
        w = spool.begin_recording("A", 1, new_id(), codec="pcm16", sample_rate=16000)
        for i in range(0, len(data), 777):
            w.append(data[i : i + 777])
        rid = w.recording_id
        for offset, size in [(0, 1), (776, 2), (7999, 5000), (49_999, 10), (0, 10**6), (50_000, 9)]:
            assert spool.read(rid, offset, size) == data[offset : offset + size]
        chunks, offset = [], 0
        while piece := spool.read(rid, offset, 3200):
            chunks.append(piece)
            offset += len(piece)
        assert b"".join(chunks) == data
        with pytest.raises(ValueError):
            spool.read(rid, 50_001, 1)


async def test_live_tail_wakes_an_asyncio_reader(tmp_path: Path) -> None:
    with open_spool(spool_config(tmp_path)) as spool:
        w = spool.begin_recording("A", 1, new_id(), codec="pcm16", sample_rate=16000)
        rid = w.recording_id
        got = bytearray()

        async def tail() -> None:
            while True:
                async with asyncio.timeout(10):
                    await spool.wait_for_data(rid, len(got))
                piece = spool.read(rid, len(got), 1 << 16)
                if not piece and spool.recording(rid).state == "closed":
                    return
                got.extend(piece)

        task = asyncio.create_task(tail())
        sent = os.urandom(20 * 320)

        def produce() -> None:
            for i in range(0, len(sent), 320):
                w.append(sent[i : i + 320])
            w.close()

        thread = threading.Thread(target=produce)
        thread.start()
        await task
        thread.join()
        assert bytes(got) == sent


def test_blocking_wait_times_out_then_sees_data(tmp_path: Path) -> None:
    with open_spool(spool_config(tmp_path)) as spool:
        w = spool.begin_recording("A", 1, new_id(), codec="pcm16", sample_rate=16000)
        assert spool.wait_for_data_blocking(w.recording_id, 0, timeout=0.01) is False
        w.append(b"abc")
        assert spool.wait_for_data_blocking(w.recording_id, 0, timeout=0.01) is True


def test_space_is_reclaimed_only_after_confirm_finalize_and_processing(tmp_path: Path) -> None:
    config = spool_config(tmp_path)
    with open_spool(config) as spool:
        r1, r2 = _closed(spool, "A", 1, b"a" * 900), _closed(spool, "A", 2, b"b" * 900)
        spool.end_encounter("A")
        segs = config.dir / "segments"
        with pytest.raises(SpoolError, match="cannot be finalized"):
            spool.mark_finalized(r1)
        spool.confirm(r1, 900)
        spool.mark_finalized(r1)
        assert spool.encounters_ready_for_processing() == []  # r2 still undelivered
        _deliver(spool, r2)
        assert [e.id for e in spool.encounters_ready_for_processing()] == ["A"]
        assert len(list(segs.iterdir())) == 2 and spool.backlog().recordings == 2
        spool.mark_processing_started("A")
        assert list(segs.iterdir()) == []
        assert spool.backlog().recordings == 0 and spool.backlog().bytes == 0


def test_confirm_is_monotonic_bounded_and_resettable(tmp_path: Path) -> None:
    with open_spool(spool_config(tmp_path)) as spool:
        rid = _closed(spool, "A", 1, b"a" * 100)
        spool.confirm(rid, 60)
        spool.confirm(rid, 40)  # a late, stale ack
        assert spool.recording(rid).confirmed == 60
        with pytest.raises(ValueError):
            spool.confirm(rid, 101)
        spool.reset_confirmed(rid)  # the service forgot the recording
        assert spool.recording(rid).confirmed == 0


def test_half_finished_delete_is_completed_at_start_up(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    config = spool_config(tmp_path, segment_bytes=2000)
    spool = open_spool(config)
    w = spool.begin_recording("A", 1, new_id(), codec="pcm16", sample_rate=16000)
    for _ in range(10):
        w.append(os.urandom(1000))
    w.close()
    rid = w.recording_id
    spool.end_encounter("A")
    _deliver(spool, rid)

    def die_midway(live, segments_dir, ops):  # type: ignore[no-untyped-def]
        live.segments[0].path.unlink()
        raise KeyboardInterrupt  # the process dies between two unlinks

    monkeypatch.setattr(core, "delete_segments", die_midway)
    with pytest.raises(KeyboardInterrupt):
        spool.mark_processing_started("A")
    monkeypatch.undo()
    crash(spool)
    assert (
        len(list((config.dir / "segments").iterdir())) == 9
    )  # of 10 (one record per 2000-byte segment)
    with open_spool(config) as spool:
        assert list((config.dir / "segments").iterdir()) == []
        assert spool.backlog().recordings == 0 and spool.backlog().quarantined == 0


def test_crash_open_recordings_are_listed_and_closed_by_the_daemon(tmp_path: Path) -> None:
    config = spool_config(tmp_path)
    spool = open_spool(config)
    w = spool.begin_recording("A", 1, new_id(), codec="pcm16", sample_rate=16000)
    data = os.urandom(7000)
    w.append(data)
    crash(spool)
    with open_spool(config) as spool:
        [info] = spool.recovered_open_recordings()
        assert info.id == w.recording_id and info.length == 7000 and not info.live
        spool.close_recovered(info.id)
        rec = spool.recording(info.id)
        assert (rec.state, rec.close_reason) == ("closed", "crash-recovered")
        assert spool.read(info.id, 0, 10_000) == data
        assert [r.id for r in spool.pending_recordings()] == [info.id]


def test_retry_state_survives_restarts_and_can_be_cleared(tmp_path: Path) -> None:
    config = spool_config(tmp_path)
    with open_spool(config) as spool:
        rid = _closed(spool, "A", 1, b"x")
        assert spool.note_failure(rid, "HTTP 503", next_attempt_at=5000.0) == 1
        assert spool.note_failure(rid, "HTTP 503 again", next_attempt_at=6000.0) == 2
        spool.end_encounter("A")
        spool.note_encounter_failure("A", "StartProcessing: 500", 7000.0)
        assert spool.pending_recordings(ready_at=5999.0) == []
    with open_spool(config) as spool:
        rec = spool.recording(rid)
        assert (rec.attempts, rec.next_attempt_at, rec.last_error) == (2, 6000.0, "HTTP 503 again")
        assert spool.encounter("A").attempts == 1
        assert [r.id for r in spool.pending_recordings(ready_at=6000.0)] == [rid]
        spool.note_success(rid)
        assert (spool.recording(rid).attempts, spool.recording(rid).next_attempt_at) == (0, None)
        spool.note_failure(rid, "HTTP 503 again", next_attempt_at=6000.0)
        spool.retry(None)
        assert spool.recording(rid).next_attempt_at is None
        assert spool.recording(rid).last_error == "HTTP 503 again"  # history kept


def test_quarantine_is_kept_reported_and_lifted_by_retry(tmp_path: Path) -> None:
    config = spool_config(tmp_path)
    with open_spool(config) as spool:
        rid = _closed(spool, "A", 1, b"x" * 10)
        spool.quarantine(rid, "400: invalid audio format")
        assert spool.pending_recordings() == [] and spool.backlog().quarantined == 1
    submit_request(config.dir, "retry", rid)  # what `spool retry` does under a running daemon
    with open_spool(config) as spool:  # requests are applied at open (and apply_requests())
        assert spool.recording(rid).quarantine is None
        assert [r.id for r in spool.pending_recordings()] == [rid]


def test_purge_refuses_undelivered_without_force(tmp_path: Path) -> None:
    config = spool_config(tmp_path)
    with open_spool(config) as spool:
        rid = _closed(spool, "A", 1, b"x" * 10)
        with pytest.raises(SpoolError, match="not confirmed"):
            spool.purge("A")
        assert spool.purge("A", force=True) == [rid]
        assert spool.recordings() == [] and list((config.dir / "segments").iterdir()) == []


def test_high_water_refuses_new_encounters_but_not_the_running_one(tmp_path: Path) -> None:
    config = spool_config(tmp_path, max_bytes=40_000, high_water_ratio=0.5, segment_bytes=1 << 20)
    with open_spool(config) as spool:
        w = spool.begin_recording("A", 1, new_id(), codec="pcm16", sample_rate=16000)
        for _ in range(7):
            w.append(b"\0" * 3200)  # ~23 KB: past the 20 KB high-water mark
        assert spool.space().alarm == "spool-high-water"
        with pytest.raises(SpoolRefused) as refused:
            spool.begin_encounter("B")
        assert refused.value.reason == "spool-high-water"
        w.close()
        w2 = spool.begin_recording("A", 2, new_id(), codec="pcm16", sample_rate=16000)  # resume
        with pytest.raises(SpoolFull) as full:
            for _ in range(10):
                w2.append(b"\0" * 3200)
        assert full.value.reason == "spool-full"
        w2.close()
        total = spool.recording(w.recording_id).length + spool.recording(w2.recording_id).length
        assert total % 3200 == 0 and spool.backlog().bytes <= 40_000


def test_disk_reserve_is_respected(tmp_path: Path) -> None:
    ops = CountingFileOps(fake_free=10_000)
    config = spool_config(tmp_path, reserve_free_bytes=8000)
    with open_spool(config, ops=ops) as spool:
        w = spool.begin_recording("A", 1, new_id(), codec="pcm16", sample_rate=16000)
        w.append(b"\0" * 1000)
        with pytest.raises(SpoolFull) as exc:
            w.append(b"\0" * 3000)
        assert exc.value.reason == "disk-reserve"
        w.close()


def test_backlog_status_matches_the_status_model(tmp_path: Path) -> None:
    clock_now = [1000.0]
    config = spool_config(tmp_path)
    with open_spool(config, clock=lambda: clock_now[0]) as spool:
        _closed(spool, "A", 1, b"x" * 10)
        clock_now[0] = 1060.0
        status = spool.backlog()
        assert status.recordings == 1 and status.oldest_age_s == 60.0 and status.bytes > 10


def test_backlog_follows_every_change_but_does_not_rescan_between_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every status asks for the backlog (twice a second): with thousands waiting, the pass
    over them must run once per change, and the figures must still follow each change."""
    clock_now = [1000.0]
    with open_spool(spool_config(tmp_path), clock=lambda: clock_now[0]) as spool:
        a = _closed(spool, "A", 1, b"x")
        clock_now[0] = 1010.0
        b = _closed(spool, "B", 1, b"x")
        first = spool.backlog()
        assert (first.recordings, first.oldest_age_s, first.quarantined) == (2, 10.0, 0)
        scans: list[int] = []
        original_min = min
        monkeypatch.setattr(
            core, "min", lambda *a, **k: scans.append(1) or original_min(*a, **k), raising=False
        )
        clock_now[0] = 1020.0
        again = spool.backlog()
        assert again.oldest_age_s == 20.0 and scans == []  # the age moves; no rescan
        spool.quarantine(b, "bad identity")
        assert spool.backlog().quarantined == 1 and len(scans) == 1
        _closed(spool, "C", 1, b"x")
        after = spool.backlog()
        assert (after.recordings, after.oldest_age_s, after.quarantined) == (3, 20.0, 1)
        assert spool.pending_recordings()[0].id == a
        spool.retry(b)
        assert spool.backlog().quarantined == 0


def test_segments_from_a_lost_ledger_rejoin_their_encounter_from_their_sealed_header(
    tmp_path: Path,
) -> None:
    config = spool_config(tmp_path)
    data = os.urandom(5000)
    with open_spool(config) as spool:
        rid = _closed(spool, "A", 2, data)
    (config.dir / "ledger.json").write_text("not json")
    with open_spool(config) as spool:
        [rec] = spool.recordings()
        assert (rec.id, rec.encounter, rec.seq, rec.codec, rec.sample_rate, rec.length) == (
            rid, "A", 2, "pcm16", 16000, 5000
        )  # fmt: skip
        assert rec.quarantine is None and [r.id for r in spool.pending_recordings()] == [rid]
        assert spool.read(rid, 0, 10_000) == data
        assert any("ledger-reset" in n for n in spool.notices)


def test_orphan_segments_without_a_header_are_kept_and_quarantined(tmp_path: Path) -> None:
    config = spool_config(tmp_path)
    data = os.urandom(5000)
    with open_spool(config) as spool:
        rid = _closed(spool, "A", 1, data)
    (config.dir / "ledger.json").write_text("not json")
    for header in (config.dir / "headers").iterdir():  # as segments of older versions were
        header.unlink()
    with open_spool(config) as spool:
        [rec] = spool.recordings()
        assert rec.id == rid and rec.quarantine is not None and "orphan" in rec.quarantine
        assert spool.read(rid, 0, 10_000) == data  # still readable for an operator
        assert any("ledger-reset" in n for n in spool.notices)
        assert spool.retry() == [] and spool.recording(rid).quarantine is not None  # never sent


def test_a_full_disk_does_not_stop_the_spool_from_opening(tmp_path: Path) -> None:
    config = spool_config(tmp_path)
    with open_spool(config) as spool:
        rid = _closed(spool, "A", 1, b"q" * 500)
    full = CountingFileOps(fail_at_write=1, fail_times=10**6)  # every write: ENOSPC
    spool = open_spool(config, ops=full)  # must open: the backlog has to be delivered
    try:
        assert spool.read(rid, 0, 500) == b"q" * 500
        with pytest.raises(SpoolFull) as exc:
            spool.begin_encounter("B")
        assert exc.value.reason == "disk-full"
        assert spool.recordings()[0].encounter == "A"  # B was not half-admitted
        with pytest.raises(KeyError):
            spool.encounter("B")
    finally:
        full.fail_at_write = None
        spool.close()


def test_operator_commands_keep_the_ledger_owned_by_the_service_user(tmp_path: Path) -> None:
    from edge_recorder.spool import admin

    config = spool_config(tmp_path)
    with open_spool(config) as spool:
        rid = _closed(spool, "A", 1, b"x")
    service_uid = 4242 if os.geteuid() == 0 else os.getuid()
    if os.geteuid() == 0:
        os.chown(config.dir, service_uid, service_uid)
    assert admin.retry(config.dir, rid)[0] == "applied"
    assert (config.dir / "ledger.json").stat().st_uid == service_uid


def test_undelivered_audio_never_expires(tmp_path: Path) -> None:
    config = spool_config(tmp_path)
    with open_spool(config, clock=lambda: 1_000.0) as spool:
        rid = _closed(spool, "A", 1, b"old audio")
    ten_years = 1_000.0 + 10 * 365 * 86400
    with open_spool(config, clock=lambda: ten_years) as spool:
        assert [r.id for r in spool.pending_recordings(ready_at=ten_years)] == [rid]
        assert spool.read(rid, 0, 100) == b"old audio"
        assert spool.backlog().oldest_age_s == ten_years - 1_000.0


def test_reads_of_what_capture_just_wrote_equal_the_disk_and_skip_it(tmp_path: Path) -> None:
    """The live stream asks for the bytes capture appended a moment ago: they come from the
    writer's bounded in-memory tail (no file read, no decrypt), and equal what is on disk."""
    from edge_recorder.spool.writer import RECENT_BYTES

    config = spool_config(tmp_path, segment_bytes=64 * 1024)
    pieces = [os.urandom(3200 + i % 7) for i in range(80)]
    data = b"".join(pieces)
    with open_spool(config) as spool:
        writer = spool.begin_recording("e", 1, new_id(), codec="pcm16", sample_rate=16000)
        rid = str(writer.recording_id)
        served: list[bytes] = []
        for piece in pieces:
            offset = writer.append(piece) - len(piece)
            served.append(spool.read(rid, offset, len(piece)))  # tailing, as live delivery
        assert b"".join(served) == data
        assert rid not in spool._readers  # never needed the file: all from the tail
        start, recent = spool._live[rid].recent
        assert 0 < len(recent) <= RECENT_BYTES + 3206 and recent == data[start:]
        assert spool.read(rid, 0, 5000) == data[:5000]  # older bytes: from the file
        assert rid in spool._readers
        across = start - 100  # a range that starts before the tail: read from the file
        assert spool.read(rid, across, 300) == data[across : across + 300]
        writer.close()
    with open_spool(config) as spool:  # and the file holds the same bytes
        assert spool.read(rid, 0, len(data)) == data
