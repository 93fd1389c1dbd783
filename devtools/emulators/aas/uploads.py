"""REST uploads: storeChunk parts and finalizeUpload reconciled in any order.

Chunks are kept one file each until finalizeUpload has declared `totalChunks` and every chunk
1..totalChunks is in; then they are joined in chunkId order into the recording's raw file, a
playable copy is written and the recording is handed to processing ("finalized"). REST carries
no audio format, so the emulator sniffs it: `OggS` → Ogg Opus, otherwise 16 kHz mono PCM16
(the format the device sends by default).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from devtools.emulators.aas import rules
from devtools.emulators.aas.store import Recording, Store, now_iso, rest_key

PCM_DEFAULT: dict[str, Any] = {"pcm": {"sampleRateHz": 16000, "bitcount": 16, "channels": 1}}


class Uploads:
    def __init__(self, store: Store) -> None:
        self.store = store

    def _chunk_dir(self, cid: str, key: str) -> Path:
        return self.store.raw_path(cid, key).with_suffix(".chunks")

    def _recording(self, cid: str, recording_id: int) -> Recording:
        session = self.store.sessions[cid]
        key = rest_key(recording_id)
        rec = session.recordings.get(key)
        if rec is None:
            rec = Recording(key, "rest", str(recording_id), recording_id)
            session.recordings[key] = rec
        return rec

    def store_chunk(
        self, cid: str, recording_id: int, chunk_id: int, is_last: bool, content: bytes
    ) -> Recording:
        """Keep one chunk (idempotent for the same bytes); may complete the recording."""
        rec = self._recording(cid, recording_id)
        directory = self._chunk_dir(cid, rec.key)
        path = directory / f"{chunk_id}.bin"
        if chunk_id in rec.chunks:
            stored = path.read_bytes() if path.exists() else None
            if stored is not None and stored != content:
                raise rules.ChunkConflict(
                    f"chunk {chunk_id} of recording {recording_id} was already stored with "
                    "different content"
                )
            return rec
        if rec.state == "finalized":
            raise rules.WrongState(f"recording {recording_id} is already complete")
        rules.check_chunk(chunk_id, is_last, rec.chunks.keys(), rec.last_chunk_id, rec.total_chunks)
        directory.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(content)
        tmp.replace(path)
        new = not rec.chunks
        rec.chunks[chunk_id] = len(content)
        if is_last:
            rec.last_chunk_id = chunk_id
        rec.updated_at = now_iso()
        self._maybe_complete(cid, rec)
        # The chunk file is the record of a chunk: the metadata is written only when it
        # changes shape (a new recording, the last chunk, completion), not once per chunk.
        if new or is_last or rec.state == "finalized":
            self.store.save(self.store.sessions[cid])
        return rec

    def finalize(self, cid: str, recording_id: int, total_chunks: int) -> Recording:
        """Declare the chunk count; completes now or once the missing chunks arrive."""
        rec = self._recording(cid, recording_id)
        if rec.total_chunks is not None and rec.total_chunks != total_chunks:
            raise rules.TotalMismatch(
                f"totalChunks {total_chunks} disagrees with totalChunks {rec.total_chunks} "
                "declared earlier for this recording"
            )
        rules.check_total(total_chunks, rec.chunks.keys(), rec.last_chunk_id)
        rec.total_chunks = total_chunks
        if rec.state == "open":
            rec.state = "closed"
        rec.updated_at = now_iso()
        self._maybe_complete(cid, rec)
        self.store.save(self.store.sessions[cid])
        return rec

    def _maybe_complete(self, cid: str, rec: Recording) -> None:
        if rec.total_chunks is None or rec.state == "finalized":
            return
        # chunk ids are unique and checked to lie in 1..totalChunks: all in iff as many
        if len(rec.chunks) < rec.total_chunks:
            return
        directory = self._chunk_dir(cid, rec.key)
        raw = self.store.raw_path(cid, rec.key)
        tmp = raw.with_suffix(".raw.tmp")
        with tmp.open("wb") as out:
            for chunk_id in range(1, rec.total_chunks + 1):
                out.write((directory / f"{chunk_id}.bin").read_bytes())
        tmp.replace(raw)
        with raw.open("rb") as fh:
            head = fh.read(4)
        rec.data_format = {"opus": {}} if head == b"OggS" else dict(PCM_DEFAULT)
        rec.state = "finalized"
        rec.processing_started = True
        self.store.sessions[cid].processing_started = True
        self.store.write_playable(cid, rec)
        self._supersede_live_copy(cid, rec)

    def _supersede_live_copy(self, cid: str, rec: Recording) -> None:
        """[inferred] A complete REST upload of recording number N replaces an unfinished live
        copy of it (a stream that broke and was never closed): the device sends a recording
        through REST whole when it cannot resume it live. Not processed, kept for inspection."""
        for other in self.store.sessions[cid].recordings.values():
            if (
                other is not rec
                and other.sequence_number == rec.sequence_number
                and other.state == "open"
                and (cid, other.key) not in self.store.streaming
            ):
                other.state = "superseded"
                other.updated_at = now_iso()
