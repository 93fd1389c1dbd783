"""Persistence: ambient sessions and their recordings under the emulator's data dir.

Layout (one directory per session, the correlationId percent-quoted):
    sessions/<cid>/session.json          metadata of the session and every recording
    sessions/<cid>/<key>.raw             the recording's bytes exactly as received
    sessions/<cid>/<key>.wav|.ogg|...    a playable copy, rewritten when a stream ends
    sessions/<cid>/<key>.chunks/<n>.bin  REST chunks until the recording is complete
The byte count of a streamed recording is the size of its raw file, so bytes written just
before a crash are still counted after a restart. Likewise the REST chunks received are the
files in `<key>.chunks/`: session.json does not list them (rewriting a growing list on every
storeChunk made an upload quadratic in its chunk count), they are read back at start. Every
method is synchronous and runs on the event loop: one writer, no locks.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import wave
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from devtools.emulators.aas import rules

COPY_BLOCK = 1 << 20  # bytes read at a time when a whole recording is copied or hashed


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


@dataclass
class Recording:
    """One recording; `key` is its GUID (gRPC/WebSocket) or `rest-<recordingId>` (REST)."""

    key: str
    transport: str
    recording_id: str
    sequence_number: int
    data_format: dict[str, Any] = field(default_factory=dict)
    state: str = "open"  # open | closed | finalized | superseded (by a REST upload)
    processing_started: bool = False
    created_at: str = field(default_factory=now_iso)
    updated_at: str = field(default_factory=now_iso)
    close_reason: str = ""
    recording_length_seconds: float = 0.0
    # REST: chunkId -> content bytes; in memory only (the chunk files are the record)
    chunks: dict[int, int] = field(default_factory=dict)
    last_chunk_id: int | None = None
    total_chunks: int | None = None


@dataclass
class Session:
    correlation_id: str
    created_via: str
    product_id: str = ""
    partner_id: str = ""
    customer_id: str = ""
    external_user_id: str = ""
    ehr_instance_id: str = ""
    data: str = ""
    processing_started: bool = False
    created_at: str = field(default_factory=now_iso)
    recordings: dict[str, Recording] = field(default_factory=dict)


def dir_name(cid: str) -> str:
    """A file name for a correlationId: injective, never `.`/`..`, never a path separator.

    The seed only requires finalize's correlationId to be a non-empty string, so anything can
    arrive here; quoting every byte but [A-Za-z0-9_-] keeps it inside the sessions directory.
    """
    encoded = quote(cid, safe="-_").replace(".", "%2E").replace("~", "%7E")
    if len(encoded) > 200:
        encoded = "h-" + hashlib.sha256(cid.encode()).hexdigest()
    return encoded


def rest_key(recording_id: int) -> str:
    return f"rest-{recording_id}"


class Store:
    """All sessions, loaded from disk at start and written through on every change."""

    def __init__(self, data_dir: Path) -> None:
        self.root = data_dir / "sessions"
        self.root.mkdir(parents=True, exist_ok=True)
        self.sessions: dict[str, Session] = {}
        self.streaming: set[tuple[str, str]] = set()  # (cid, key) with a stream attached now
        self._load()

    # ------------------------------------------------------------------ sessions
    def _dir(self, cid: str) -> Path:
        return self.root / dir_name(cid)

    def _load(self) -> None:
        for meta in sorted(self.root.glob("*/session.json")):
            raw = json.loads(meta.read_text())
            recs = {k: Recording(**v) for k, v in raw.pop("recordings").items()}
            session = Session(**raw, recordings=recs)
            self.sessions[session.correlation_id] = session
            for rec in recs.values():
                chunk_dir = self.raw_path(session.correlation_id, rec.key).with_suffix(".chunks")
                for part in chunk_dir.glob("*.bin"):
                    rec.chunks[int(part.stem)] = part.stat().st_size

    def save(self, session: Session) -> None:
        """Write the session's metadata (not its REST chunk list: see the module doc)."""
        directory = self._dir(session.correlation_id)
        directory.mkdir(parents=True, exist_ok=True)
        meta = asdict(session)
        for rec in meta["recordings"].values():
            del rec["chunks"]
        tmp = directory / "session.json.tmp"
        tmp.write_text(json.dumps(meta, indent=2))
        tmp.replace(directory / "session.json")

    def get(self, cid: str) -> Session | None:
        return self.sessions.get(cid)

    def upsert_session(self, cid: str, created_via: str, **fields: str) -> tuple[Session, bool]:
        """Create the session or update its non-empty fields; True when it was new."""
        session = self.sessions.get(cid)
        created = session is None
        if session is None:
            session = Session(correlation_id=cid, created_via=created_via)
            self.sessions[cid] = session
        for name, value in fields.items():
            if value:
                setattr(session, name, value)
        self.save(session)
        return session, created

    def delete_session(self, cid: str) -> bool:
        if self.sessions.pop(cid, None) is None:
            return False
        shutil.rmtree(self._dir(cid), ignore_errors=True)
        return True

    # ------------------------------------------------------------------ files
    def raw_path(self, cid: str, key: str) -> Path:
        return self._dir(cid) / f"{key}.raw"

    def held(self, cid: str, key: str) -> int:
        path = self.raw_path(cid, key)
        return path.stat().st_size if path.exists() else 0

    def _read(self, cid: str, key: str, offset: int, length: int) -> bytes:
        with self.raw_path(cid, key).open("rb") as fh:
            fh.seek(offset)
            return fh.read(length)

    def playable_path(self, cid: str, rec: Recording) -> Path:
        fmt = rec.data_format
        if "pcm" in fmt:
            ext = ".wav"
        elif "opus" in fmt:
            ext = ".ogg"
        elif "webmOpus" in fmt:
            ext = ".webm"
        else:
            ext = ".bin"
        return self._dir(cid) / f"{rec.key}{ext}"

    def write_playable(self, cid: str, rec: Recording) -> None:
        """Copy the raw bytes into a file a player opens (a WAV header for PCM), block by
        block: an 8 h recording is ~0.9 GB, which read whole made the emulator's memory grow
        with the recording."""
        raw = self.raw_path(cid, rec.key)
        if not raw.exists():
            return
        target = self.playable_path(cid, rec)
        pcm = rec.data_format.get("pcm")
        if pcm is not None:
            width = max(1, int(pcm.get("bitcount", 16)) // 8)
            with wave.open(str(target), "wb") as wav, raw.open("rb") as source:
                wav.setnchannels(int(pcm.get("channels", 1)) or 1)
                wav.setsampwidth(width)
                wav.setframerate(int(pcm.get("sampleRateHz", 16000)) or 16000)
                for block in iter(lambda: source.read(COPY_BLOCK), b""):
                    wav.writeframesraw(block)
        else:
            shutil.copyfile(raw, target)

    def sha256(self, cid: str, key: str) -> str:
        digest = hashlib.sha256()
        path = self.raw_path(cid, key)
        if path.exists():
            with path.open("rb") as fh:
                for block in iter(lambda: fh.read(COPY_BLOCK), b""):
                    digest.update(block)
        return digest.hexdigest()

    # ------------------------------------------------------------------ streamed recordings
    def recording(self, cid: str, key: str) -> Recording:
        session = self.sessions.get(cid)
        rec = session.recordings.get(key) if session else None
        if rec is None:
            raise rules.NotFound(f"recording {key} is unknown in ambient session {cid}")
        return rec

    def open_stream(
        self,
        cid: str,
        guid: str,
        transport: str,
        data_format: dict[str, Any],
        sequence_number: int,
        session_fields: dict[str, str],
        starting_offset: int = 0,
    ) -> tuple[Recording, int]:
        """Open (or reopen, to continue) a streamed recording; returns it and the bytes held.

        A resume (`starting_offset` > 0) is refused when the service holds fewer bytes than the
        client believes it confirmed, e.g. because the recording expired server side: the
        client must then deliver the whole recording another way, never continue mid-air.
        """
        existing = self.sessions.get(cid)
        rec = existing.recordings.get(guid) if existing else None
        if starting_offset > 0:
            if rec is None:
                raise rules.NotFound(
                    f"recording {guid} is unknown here; cannot resume at offset {starting_offset}"
                )
            held_now = self.held(cid, guid)
            if held_now < starting_offset:
                raise rules.OffsetGap(
                    f"server holds {held_now} bytes of {guid}; cannot resume at {starting_offset}"
                )
        session, _ = self.upsert_session(cid, transport, **session_fields)
        rec = session.recordings.get(guid)
        if rec is None:
            used = {r.sequence_number for r in session.recordings.values()}
            if sequence_number <= 0:
                sequence_number = max(used, default=0) + 1
            rec = Recording(guid, transport, guid, sequence_number, data_format)
            session.recordings[guid] = rec
            self.raw_path(cid, guid).touch()
        else:
            if rec.state == "finalized":
                raise rules.WrongState(f"recording {guid} was already handed to processing")
            if rec.data_format and data_format and rec.data_format != data_format:
                raise rules.WrongState(f"recording {guid} was opened with another dataFormat")
            rec.state = "open"
            rec.transport = transport
            rec.updated_at = now_iso()
        self.save(session)
        self.streaming.add((cid, rec.key))
        return rec, self.held(cid, guid)

    def write(self, cid: str, key: str, offset: int, data: bytes) -> int:
        """Store `data` at `offset` under the offset rules; returns the bytes now held."""
        rec = self.recording(cid, key)
        if rec.state != "open":
            raise rules.WrongState(f"recording {key} is {rec.state}, not open")
        held = self.held(cid, key)
        tail = rules.plan_write(held, offset, data, lambda o, n: self._read(cid, key, o, n))
        if tail:
            with self.raw_path(cid, key).open("ab") as fh:
                fh.write(tail)
        return held + len(tail)

    def end_stream(self, cid: str, key: str, *, closed: bool, length_s: float, reason: str) -> int:
        """A stream ended (closed by the client, or broken): refresh the playable file."""
        rec = self.recording(cid, key)
        if closed and rec.state == "open":
            rec.state = "closed"
            rec.recording_length_seconds = length_s
            rec.close_reason = reason
        rec.updated_at = now_iso()
        self.write_playable(cid, rec)
        session = self.sessions[cid]
        self.save(session)
        self.streaming.discard((cid, key))
        return self.held(cid, key)

    def start_processing(self, cid: str, keys: list[str]) -> tuple[int, int]:
        """Mark the session (and the named recordings, or all) as handed to processing."""
        session = self.sessions.get(cid)
        if session is None:
            raise rules.NotFound(f"no ambient session for correlationId {cid}")
        every = [r for r in session.recordings.values() if r.state != "superseded"]
        chosen = [self.recording(cid, k) for k in keys] if keys else every
        still_open = [r.key for r in chosen if r.state == "open"]
        if still_open:
            raise rules.WrongState(f"recording(s) still open: {', '.join(still_open)}")
        total = 0
        for rec in chosen:
            rec.processing_started = True
            rec.state = "finalized"
            total += self.held(cid, rec.key)
        session.processing_started = True
        self.save(session)
        return len(chosen), total

    def processing_started(self, cid: str, recording_id: str) -> bool:
        """The recording was handed to processing (StartProcessing, or a REST finalize)."""
        session = self.sessions.get(cid)
        if session is None:
            return False
        key = recording_id if recording_id in session.recordings else rest_key_of(recording_id)
        rec = session.recordings.get(key)
        return rec is not None and rec.processing_started

    def forget(self, cid: str, recording_id: str) -> bool:
        """Drop a recording as if it expired server side (fault injection)."""
        session = self.sessions.get(cid)
        if session is None:
            return False
        key = recording_id if recording_id in session.recordings else rest_key_of(recording_id)
        rec = session.recordings.pop(key, None)
        if rec is None:
            return False
        for path in self._dir(cid).glob(f"{key}.*"):
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink()
        self.save(session)
        return True

    # ------------------------------------------------------------------ inspection
    def describe(self, session: Session) -> dict[str, Any]:
        cid = session.correlation_id
        recs = []
        for rec in sorted(session.recordings.values(), key=lambda r: r.sequence_number):
            playable = self.playable_path(cid, rec)
            item: dict[str, Any] = {
                "recordingId": rec.recording_id,
                "transport": rec.transport,
                "sequenceNumber": rec.sequence_number,
                "dataFormat": rec.data_format,
                "state": rec.state,
                "bytes": self.held(cid, rec.key),
                "sha256": self.sha256(cid, rec.key),
                "file": str(playable) if playable.exists() else None,
                "rawFile": str(self.raw_path(cid, rec.key)),
                "processingStarted": rec.processing_started,
                "streaming": (cid, rec.key) in self.streaming,  # a stream attached right now
                "createdAt": rec.created_at,
                "updatedAt": rec.updated_at,
            }
            if rec.transport == "rest":
                received = sorted(rec.chunks)
                item["chunksReceived"] = received
                item["totalChunks"] = rec.total_chunks
                if rec.total_chunks is not None:
                    item["missingChunks"] = rules.missing_chunks(rec.total_chunks, received)
            else:
                item["closeReason"] = rec.close_reason
                item["recordingLengthSeconds"] = rec.recording_length_seconds
            recs.append(item)
        return {
            "correlationId": cid,
            "createdVia": session.created_via,
            "productId": session.product_id,
            "partnerId": session.partner_id,
            "customerId": session.customer_id,
            "externalUserId": session.external_user_id,
            "ehrInstanceId": session.ehr_instance_id,
            "processingStarted": session.processing_started,
            "createdAt": session.created_at,
            "recordings": recs,
        }


def rest_key_of(recording_id: str) -> str:
    return f"rest-{recording_id}"
