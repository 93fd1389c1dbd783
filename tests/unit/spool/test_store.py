"""The Spool facade: encryption on disk, file count, lazy start-up, fsync cadence, failures."""

from __future__ import annotations

import errno
import os
import random
import tracemalloc
from pathlib import Path

import pytest

from edge_recorder.spool import (
    RecordingClosed,
    SpoolDiskFull,
    SpoolIOError,
    SpoolKeyError,
    SpoolLocked,
)
from edge_recorder.spool.fileops import CountingFileOps
from edge_recorder.spool.records import RECORD_OVERHEAD, SEGMENT_HEADER_BYTES, iter_records
from tests.unit.spool.helpers import (
    FakeClock,
    all_spool_bytes,
    new_id,
    open_spool,
    spool_config,
)

CHUNK = 3200  # 100 ms of 16 kHz PCM16


def _record(spool, data: bytes, chunk: int = CHUNK, enc: str = "enc-1", seq: int = 1) -> str:  # type: ignore[no-untyped-def]
    writer = spool.begin_recording(enc, seq, new_id(), codec="pcm16", sample_rate=16000)
    for i in range(0, len(data), chunk):
        writer.append(data[i : i + chunk])
    writer.close()
    return str(writer.recording_id)


def test_no_plaintext_anywhere_on_disk(tmp_path: Path) -> None:
    payload = random.Random(1).randbytes(64 * 1024)
    config = spool_config(tmp_path, segment_bytes=16 * 1024)
    with open_spool(config) as spool:
        rid = _record(spool, payload)
        assert spool.read(rid, 0, len(payload)) == payload
    disk = all_spool_bytes(config.dir) + config.key_file.read_bytes()
    windows = {payload[i : i + 16] for i in range(0, len(payload) - 16)}
    assert not any(disk[i : i + 16] in windows for i in range(len(disk) - 16))


def test_many_small_chunks_share_one_segment_file(tmp_path: Path) -> None:
    config = spool_config(tmp_path)
    with open_spool(config) as spool:
        _record(spool, os.urandom(1000 * 320), chunk=320)  # 1000 appends of 10 ms
    files = list((config.dir / "segments").iterdir())
    assert len(files) == 1
    assert files[0].stat().st_size == SEGMENT_HEADER_BYTES + 1000 * (320 + RECORD_OVERHEAD)


def test_an_appended_buffer_changed_afterwards_changes_nothing_stored(tmp_path: Path) -> None:
    """A chunk is stored without a copy when it is bytes; any other buffer is copied (the
    live tail keeps it)."""
    with open_spool(spool_config(tmp_path)) as spool:
        writer = spool.begin_recording("enc-1", 1, new_id(), codec="pcm16", sample_rate=16000)
        buffer = bytearray(b"a" * 640)
        writer.append(buffer)
        buffer[:] = b"b" * 640
        writer.append(b"c" * 640)
        assert spool.read(writer.recording_id, 0, 1280) == b"a" * 640 + b"c" * 640
        writer.close()
        assert spool.read(writer.recording_id, 0, 1280) == b"a" * 640 + b"c" * 640


def test_segments_roll_at_segment_bytes(tmp_path: Path) -> None:
    config = spool_config(tmp_path, segment_bytes=10_000)
    data = os.urandom(30 * CHUNK)
    with open_spool(config) as spool:
        rid = _record(spool, data)
        assert spool.read(rid, 0, len(data)) == data
    sizes = [p.stat().st_size for p in (config.dir / "segments").iterdir()]
    assert len(sizes) == 10 and max(sizes) <= 10_000  # 3 records of 3256 bytes per file


def test_open_is_lazy_it_does_not_read_closed_recordings(tmp_path: Path) -> None:
    config = spool_config(tmp_path, segment_bytes=1 << 20)
    with open_spool(config) as spool:
        rids = [_record(spool, os.urandom(2 << 20), chunk=32000, seq=i + 1) for i in range(5)]
    victim = sorted((config.dir / "segments").glob(f"{rids[0].replace('-', '')}-*"))[0]
    with victim.open("r+b") as f:  # damage a closed recording: only a read can notice
        f.seek(500_000)
        f.write(b"\xff" * 64)
    tracemalloc.start()
    spool = open_spool(config)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    try:
        assert peak < 1 << 20  # 10 MB of backlog, well under 1 MB of memory to open it
        assert spool.backlog().quarantined == 0  # not scanned at start-up
        assert len(spool.pending_recordings()) == 5
    finally:
        spool.close()


def test_fsync_cadence_is_bounded_by_the_interval(tmp_path: Path) -> None:
    clock, ops = FakeClock(), CountingFileOps()
    config = spool_config(tmp_path, fsync_interval_s=1.0)
    with open_spool(config, ops=ops, monotonic=clock) as spool:
        writer = spool.begin_recording("e", 1, new_id(), codec="pcm16", sample_rate=16000)
        before = ops.fsyncs
        worst_at_risk = 0
        for _ in range(600):  # one minute of 100 ms chunks
            clock.advance(0.1)
            writer.append(os.urandom(CHUNK))
            worst_at_risk = max(worst_at_risk, writer.offset - writer.durable_offset)
        syncs = ops.fsyncs - before
        assert 55 <= syncs <= 62  # about one per second, not one per chunk
        assert worst_at_risk <= 10 * CHUNK  # at most 1 s of audio not yet on disk
        writer.close()


def test_an_idle_writer_is_synced_by_the_timer(tmp_path: Path) -> None:
    clock = FakeClock()
    with open_spool(spool_config(tmp_path), monotonic=clock) as spool:
        writer = spool.begin_recording("e", 1, new_id(), codec="pcm16", sample_rate=16000)
        writer.append(b"x" * 100)
        spool.sync()
        assert writer.durable_offset == 0
        clock.advance(1.0)
        spool.sync()
        assert writer.durable_offset == 100


def test_enospc_is_a_typed_error_and_loses_nothing_already_stored(tmp_path: Path) -> None:
    ops = CountingFileOps()
    config = spool_config(tmp_path)
    with open_spool(config, ops=ops) as spool:
        writer = spool.begin_recording("e", 1, new_id(), codec="pcm16", sample_rate=16000)
        good = os.urandom(5 * CHUNK)
        writer.append(good)
        ops.fail_at_write, ops.fail_partial = ops.writes + 1, 100  # torn write, then ENOSPC
        with pytest.raises(SpoolDiskFull) as exc:
            writer.append(os.urandom(CHUNK))
        assert exc.value.reason == "disk-full"
        assert writer.offset == len(good)
        segment = next((config.dir / "segments").iterdir())
        expected_size = SEGMENT_HEADER_BYTES + len(good) + RECORD_OVERHEAD
        assert segment.stat().st_size == expected_size  # the torn piece was cut off
        ops.fail_at_write = None
        more = os.urandom(CHUNK)
        writer.append(more)
        writer.close()
        assert spool.read(writer.recording_id, 0, 10 * CHUNK) == good + more
    with segment.open("rb") as f:  # the failed record's nonce slot was never reused
        seqs = [r.header.seq for r in iter_records(f, SEGMENT_HEADER_BYTES, 1 << 30)]
    assert seqs == [0, 2]


def test_a_torn_write_that_cannot_be_cut_back_moves_on_to_a_new_segment(tmp_path: Path) -> None:
    ops = CountingFileOps()
    config = spool_config(tmp_path)
    with open_spool(config, ops=ops) as spool:
        writer = spool.begin_recording("e", 1, new_id(), codec="pcm16", sample_rate=16000)
        good, more = os.urandom(3 * CHUNK), os.urandom(2 * CHUNK)
        writer.append(good)
        ops.fail_at_write, ops.fail_partial, ops.fail_ftruncate = ops.writes + 1, 500, True
        with pytest.raises(SpoolDiskFull):
            writer.append(os.urandom(CHUNK))
        ops.fail_ftruncate = False
        writer.append(more)
        writer.close()
        assert spool.read(writer.recording_id, 0, 10 * CHUNK) == good + more
    assert len(list((config.dir / "segments").iterdir())) == 2  # torn bytes left behind
    with open_spool(config) as spool:
        assert spool.read(writer.recording_id, 0, 10 * CHUNK) == good + more


def test_other_io_errors_are_typed_too(tmp_path: Path) -> None:
    ops = CountingFileOps()
    with open_spool(spool_config(tmp_path), ops=ops) as spool:
        writer = spool.begin_recording("e", 1, new_id(), codec="pcm16", sample_rate=16000)
        ops.fail_at_write, ops.fail_errno = ops.writes + 1, errno.EIO
        with pytest.raises(SpoolIOError, match="errno 5"):
            writer.append(b"x" * 10)
        writer.close()
        with pytest.raises(RecordingClosed):
            writer.append(b"y")


def test_second_owner_is_refused(tmp_path: Path) -> None:
    config = spool_config(tmp_path)
    with open_spool(config), pytest.raises(SpoolLocked, match="in use by another process"):
        open_spool(config)


def test_wrong_or_missing_key_is_refused_and_nothing_is_destroyed(tmp_path: Path) -> None:
    config = spool_config(tmp_path)
    with open_spool(config) as spool:
        rid = _record(spool, b"a" * 5000)
    good_key = config.key_file.read_bytes()
    config.key_file.write_text(os.urandom(32).hex())
    with pytest.raises(SpoolKeyError, match="not the key this spool was written with"):
        open_spool(config)
    config.key_file.unlink()
    with pytest.raises(SpoolKeyError, match="missing but the spool holds encrypted data"):
        open_spool(config)
    assert not config.key_file.exists()
    config.key_file.write_bytes(good_key)
    with open_spool(config) as spool:
        assert spool.read(rid, 0, 5000) == b"a" * 5000


def test_systemd_credential_key_is_used(tmp_path: Path) -> None:
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "spool-key").write_text(os.urandom(32).hex())
    config = spool_config(tmp_path)
    env = {"CREDENTIALS_DIRECTORY": str(creds)}
    with open_spool(config, environ=env) as spool:
        rid = _record(spool, b"z" * 100)
    assert not config.key_file.exists()  # no file key created when the credential exists
    with pytest.raises(SpoolKeyError):
        open_spool(config)  # without the credential this spool cannot be read
    with open_spool(config, environ=env) as spool:
        assert spool.read(rid, 0, 100) == b"z" * 100


def test_timer_syncs_and_readers_race_safely_with_a_rolling_writer(tmp_path: Path) -> None:
    import threading

    config = spool_config(tmp_path, segment_bytes=8 * 1024, fsync_interval_s=0.01)
    data = os.urandom(200 * 320)
    with open_spool(config) as spool:
        writer = spool.begin_recording("e", 1, new_id(), codec="pcm16", sample_rate=16000)
        stop = threading.Event()
        errors: list[BaseException] = []

        def timer() -> None:
            try:
                while not stop.is_set():
                    spool.sync()
            except BaseException as exc:
                errors.append(exc)

        def reader() -> None:
            offset = 0
            try:
                while offset < len(data):
                    spool.wait_for_data_blocking(writer.recording_id, offset, timeout=5)
                    piece = spool.read(writer.recording_id, offset, 1000)
                    assert piece == data[offset : offset + len(piece)]
                    offset += len(piece)
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=timer), threading.Thread(target=reader)]
        for t in threads:
            t.start()
        for i in range(0, len(data), 320):
            writer.append(data[i : i + 320])
        threads[1].join(timeout=30)
        stop.set()
        threads[0].join(timeout=30)
        writer.close()
        assert errors == []
        assert spool.read(writer.recording_id, 0, len(data)) == data
