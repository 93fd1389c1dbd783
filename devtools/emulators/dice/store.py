"""What the Dice emulator received, per stream (WebSocket session), on disk.

The real service keeps nothing [doc]; the emulator records every stream's audio so tests can
prove delivery. `<data>/streams/<n>.json` (settings, state, counts) and `<n>.pcm` (the audio
exactly as received, in arrival order). Survives restarts; a stream open when the emulator
stopped is reported `interrupted`.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class StreamRecord:
    index: int
    opened_at: str
    state: str = "open"  # open | stopped | closed | error | interrupted
    config: dict[str, Any] | None = None
    track: str | None = None
    bytes: int = 0
    chunks: int = 0
    transcript_items: int = 0
    note_sections: list[str] = field(default_factory=list)
    duration_limit_sent: list[int] = field(default_factory=list)
    error: str | None = None
    ended_at: str | None = None


class StreamStore:
    def __init__(self, data_dir: Path) -> None:
        self.dir = data_dir / "streams"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.streams: list[StreamRecord] = []
        self._files: dict[int, BinaryIO] = {}
        metas = sorted(self.dir.glob("*.json"), key=lambda p: int(p.stem))
        for path in metas:
            record = StreamRecord(**json.loads(path.read_text()))
            record.bytes = self.audio_path(record.index).stat().st_size
            if record.state == "open":
                record.state = "interrupted"
                self.save(record)
            self.streams.append(record)

    def audio_path(self, index: int) -> Path:
        return self.dir / f"{index}.pcm"

    def open_stream(self) -> StreamRecord:
        record = StreamRecord(index=len(self.streams) + 1, opened_at=now_iso())
        self.audio_path(record.index).touch()
        self.streams.append(record)
        self.save(record)
        return record

    def append(self, record: StreamRecord, pcm: bytes) -> None:
        """Write-through (flushed to the OS before the next ping is answered)."""
        fh = self._files.get(record.index)
        if fh is None:
            fh = self.audio_path(record.index).open("ab")
            self._files[record.index] = fh
        fh.write(pcm)
        fh.flush()
        record.bytes += len(pcm)
        record.chunks += 1

    def end(self, record: StreamRecord, state: str, error: str | None = None) -> None:
        if record.state == "open":
            record.state = state
        record.error = record.error or error
        record.ended_at = now_iso()
        fh = self._files.pop(record.index, None)
        if fh is not None:
            fh.close()
        self.save(record)

    def save(self, record: StreamRecord) -> None:
        path = self.dir / f"{record.index}.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(record)))
        tmp.replace(path)

    def get(self, index: int) -> StreamRecord | None:
        return self.streams[index - 1] if 1 <= index <= len(self.streams) else None

    def describe(self, record: StreamRecord) -> dict[str, Any]:
        audio = self.audio_path(record.index).read_bytes()
        return {
            "index": record.index,
            "streamId": record.track,
            "state": record.state,
            "openedAt": record.opened_at,
            "endedAt": record.ended_at,
            "bytes": len(audio),
            "sha256": hashlib.sha256(audio).hexdigest(),
            "chunks": record.chunks,
            "config": record.config,
            "transcriptItems": record.transcript_items,
            "noteSections": record.note_sections,
            "durationLimitSent": record.duration_limit_sent,
            "error": record.error,
        }

    def close(self) -> None:
        for fh in self._files.values():
            fh.close()
        self._files.clear()
