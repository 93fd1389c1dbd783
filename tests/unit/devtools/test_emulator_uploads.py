"""The AAS emulator's REST upload bookkeeping: linear in the chunk count (the metadata is not
rewritten with a growing chunk list per storeChunk), and a restart mid-upload still knows every
chunk (read back from the chunk files)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from devtools.emulators.aas import rules
from devtools.emulators.aas.store import Store
from devtools.emulators.aas.uploads import Uploads

CID = "enc-1"


def session_json(tmp_path: Path) -> Path:
    (path,) = (tmp_path / "sessions").glob("*/session.json")
    return path


def test_storing_chunks_does_not_rewrite_a_growing_session_file(tmp_path: Path) -> None:
    store = Store(tmp_path)
    store.upsert_session(CID, "rest")
    uploads = Uploads(store)
    uploads.store_chunk(CID, 1, 1, False, b"a" * 10)
    after_first = session_json(tmp_path).stat()
    for chunk_id in range(2, 400):
        uploads.store_chunk(CID, 1, chunk_id, False, b"a" * 10)
    # the middle chunks leave the metadata alone: same file, same size
    assert session_json(tmp_path).stat().st_ino == after_first.st_ino
    assert session_json(tmp_path).stat().st_size == after_first.st_size
    rec = uploads.store_chunk(CID, 1, 400, True, b"a" * 10)
    assert rec.last_chunk_id == 400
    meta = json.loads(session_json(tmp_path).read_text())
    assert "chunks" not in meta["recordings"]["rest-1"]
    assert meta["recordings"]["rest-1"]["last_chunk_id"] == 400


def test_a_restart_mid_upload_remembers_every_chunk(tmp_path: Path) -> None:
    store = Store(tmp_path)
    store.upsert_session(CID, "rest")
    uploads = Uploads(store)
    for chunk_id in (1, 2, 4):
        uploads.store_chunk(CID, 7, chunk_id, chunk_id == 4, bytes([chunk_id]) * 5)

    restarted = Store(tmp_path)
    again = Uploads(restarted)
    rec = restarted.sessions[CID].recordings["rest-7"]
    assert rec.chunks == {1: 5, 2: 5, 4: 5} and rec.last_chunk_id == 4
    # a chunk stored before the restart is still refused with other bytes...
    with pytest.raises(rules.ChunkConflict):
        again.store_chunk(CID, 7, 2, False, b"xxxxx")
    # ...and finalize completes once the missing chunk arrives
    assert again.finalize(CID, 7, 4).state == "closed"
    done = again.store_chunk(CID, 7, 3, False, bytes([3]) * 5)
    assert done.state == "finalized"
    raw = restarted.raw_path(CID, "rest-7").read_bytes()
    assert raw == b"".join(bytes([c]) * 5 for c in (1, 2, 3, 4))


def test_a_complete_upload_is_copied_to_a_playable_file_in_bounded_memory(
    tmp_path: Path,
) -> None:
    """An 8 h recording is ~0.9 GB: the WAV copy read the raw file whole, so the emulator's
    memory grew with the recording (issue #24). Now block by block, bytes unchanged."""
    import tracemalloc
    import wave

    store = Store(tmp_path)
    store.upsert_session(CID, "rest")
    uploads = Uploads(store)
    audio = bytes(range(256)) * 4096 * 8  # 8 MiB of PCM16
    size = 128 * 1024
    uploads.store_chunk(CID, 1, 1, False, b"")
    for n, start in enumerate(range(0, len(audio) - size, size), start=2):
        uploads.store_chunk(CID, 1, n, False, audio[start : start + size])
    tracemalloc.start()
    try:
        uploads.store_chunk(CID, 1, n + 1, True, audio[-size:])
        uploads.finalize(CID, 1, n + 1)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < len(audio) // 2  # a chunk and a copy block at a time, never the whole file
    rec = store.sessions[CID].recordings["rest-1"]
    with wave.open(str(store.playable_path(CID, rec)), "rb") as wav:
        assert (wav.getframerate(), wav.getsampwidth(), wav.getnchannels()) == (16000, 2, 1)
        assert wav.readframes(wav.getnframes()) == audio
