"""Listening sessions as the emulator keeps them: per-stream audio in arrival order, resume
within the window, transcript timing, persisted under the data dir (survives a restart)."""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any

RESUME_WINDOW_S = 5 * 3600.0


@dataclass
class StreamRecord:
    index: int
    started_at: float
    resumed: bool
    bytes: int = 0
    events: int = 0
    ended: str = "open"  # open | end_of_session | broken | rejected


@dataclass
class Session:
    session_id: str
    service: str
    created_at: float
    sample_rate: int
    media_encoding: str
    language_code: str
    domain_id: str = ""
    subscription_id: str = ""
    configuration: dict[str, Any] = field(default_factory=dict)
    streams: list[StreamRecord] = field(default_factory=list)
    completed: bool = False  # END_OF_SESSION received
    segments_sent: int = 0

    @property
    def audio_bytes(self) -> int:
        return sum(s.bytes for s in self.streams)

    @property
    def active(self) -> bool:
        return any(s.ended == "open" for s in self.streams)

    def seconds(self, nbytes: int) -> float | None:
        if self.media_encoding != "pcm":
            return None
        return nbytes / (self.sample_rate * 2)


class SessionStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self.sessions: dict[str, Session] = {}
        self._files: dict[tuple[str, int], IO[bytes]] = {}
        for meta in sorted(root.glob("*/session.json")):
            self.sessions[meta.parent.name] = _load(meta)
        for s in self.sessions.values():  # a restart broke every open stream
            for st in s.streams:
                if st.ended == "open":
                    st.ended = "broken"

    def dir(self, sid: str) -> Path:
        return self.root / sid

    def raw_path(self, sid: str, index: int) -> Path:
        return self.dir(sid) / f"stream-{index}.raw"

    def save(self, session: Session) -> None:
        folder = self.dir(session.session_id)
        folder.mkdir(exist_ok=True)
        tmp = folder / "session.json.tmp"
        tmp.write_text(json.dumps(asdict(session), indent=1))
        tmp.replace(folder / "session.json")

    def start_stream(self, session: Session, resumed: bool) -> StreamRecord:
        record = StreamRecord(len(session.streams), time.time(), resumed)
        session.streams.append(record)
        self.sessions[session.session_id] = session
        self.save(session)
        self._files[(session.session_id, record.index)] = self.raw_path(
            session.session_id, record.index
        ).open("ab")
        return record

    def append(self, session: Session, record: StreamRecord, data: bytes) -> None:
        fh = self._files[(session.session_id, record.index)]
        fh.write(data)
        fh.flush()
        record.bytes += len(data)

    def end_stream(self, session: Session, record: StreamRecord, how: str) -> None:
        if record.ended == "open":
            record.ended = how
        fh = self._files.pop((session.session_id, record.index), None)
        if fh is not None:
            fh.close()
        self.save(session)

    def describe(self, session: Session) -> dict[str, Any]:
        out = asdict(session)
        out.pop("configuration")  # may hold encounter context: not echoed
        out["audio_bytes"] = session.audio_bytes
        return out


def _load(path: Path) -> Session:
    doc = json.loads(path.read_text())
    streams = [StreamRecord(**s) for s in doc.pop("streams")]
    return Session(**doc, streams=streams)
