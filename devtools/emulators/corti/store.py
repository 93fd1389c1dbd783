"""What the Corti emulator holds: interactions, recording files (exact bytes), transcripts,
documents. Metadata in one JSON file (atomic rewrite), audio in one file per recording, so an
emulator restart on the same data dir keeps everything the device uploaded."""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from edge_recorder.uplinks.corti.parts import wav_audio, wav_format

STATE_FILE = "corti-state.json"


class AudioRejected(ValueError):
    """The upload is not audio the service takes; `status` is the HTTP answer."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class Recording:
    recordingId: str
    format: str  # wav | flac
    bytes: int
    sha256: str
    audioOffset: int
    audioBytes: int
    audioSha256: str
    durationS: float | None
    createdAt: str


@dataclass
class Interaction:
    interactionId: str
    tenant: str
    encounter: dict[str, Any]
    createdAt: str
    recordings: list[str] = field(default_factory=list)
    transcripts: dict[str, dict[str, Any]] = field(default_factory=dict)
    documents: dict[str, dict[str, Any]] = field(default_factory=dict)
    streams: list[dict[str, Any]] = field(default_factory=list)
    patient: dict[str, Any] = field(default_factory=dict)


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def inspect_audio(data: bytes, max_bytes: int, max_s: float) -> tuple[str, int, float | None]:
    """(format, audio offset, duration) of an upload, or AudioRejected with the reason."""
    if len(data) > max_bytes:
        raise AudioRejected(413, f"recording is {len(data)} bytes; the limit is {max_bytes}")
    if not data:
        raise AudioRejected(400, "empty request body: upload the audio file's bytes")
    if data[:4] == b"RIFF":
        try:
            audio = wav_audio(data)
            rate, channels, bits = wav_format(data)
        except ValueError as exc:
            raise AudioRejected(400, f"malformed WAV file: {exc}") from None
        duration = (
            len(audio) / (rate * channels * bits // 8) if rate and channels and bits else None
        )
        fmt, offset = "wav", len(data) - len(audio)
    elif data[:4] == b"fLaC":
        offset, duration = _flac_layout(data)
        fmt = "flac"
    else:
        raise AudioRejected(400, "unsupported audio: this emulator takes WAV or FLAC files")
    if duration is not None and duration > max_s:
        raise AudioRejected(400, f"recording is {duration:.0f} s long; the limit is {max_s:.0f} s")
    return fmt, offset, duration


def _flac_layout(data: bytes) -> tuple[int, float | None]:
    """Where the FLAC frames start, and the duration when STREAMINFO states it."""
    pos, duration = 4, None
    while True:
        if pos + 4 > len(data):
            raise AudioRejected(400, "malformed FLAC file: metadata runs past the end")
        header = data[pos]
        size = int.from_bytes(data[pos + 1 : pos + 4], "big")
        if header & 0x7F == 0 and size >= 18:  # STREAMINFO
            info = int.from_bytes(data[pos + 14 : pos + 22], "big")
            rate = info >> 44
            total = info & ((1 << 36) - 1)
            duration = total / rate if rate and total else None
        pos += 4 + size
        if header & 0x80:
            return pos, duration


class CortiStore:
    def __init__(self, data_dir: Path) -> None:
        self.dir = data_dir
        self.blobs = data_dir / "recordings"
        self.blobs.mkdir(parents=True, exist_ok=True)
        self.interactions: dict[str, Interaction] = {}
        self.recordings: dict[str, Recording] = {}
        self._load()

    # ------------------------------------------------------------------ persistence
    def _load(self) -> None:
        path = self.dir / STATE_FILE
        if not path.exists():
            return
        raw = json.loads(path.read_text())
        self.interactions = {k: Interaction(**v) for k, v in raw["interactions"].items()}
        self.recordings = {k: Recording(**v) for k, v in raw["recordings"].items()}

    def save(self) -> None:
        payload = {
            "interactions": {k: asdict(v) for k, v in self.interactions.items()},
            "recordings": {k: asdict(v) for k, v in self.recordings.items()},
        }
        tmp = self.dir / f".{STATE_FILE}.tmp"
        tmp.write_text(json.dumps(payload, indent=1))
        tmp.replace(self.dir / STATE_FILE)

    # ------------------------------------------------------------------ interactions
    def create_interaction(
        self, tenant: str, encounter: dict[str, Any], patient: dict[str, Any] | None = None
    ) -> Interaction:
        item = Interaction(str(uuid.uuid4()), tenant, encounter, now(), patient=patient or {})
        self.interactions[item.interactionId] = item
        self.save()
        return item

    def interaction(self, tenant: str, interaction_id: str) -> Interaction | None:
        found = self.interactions.get(interaction_id)
        return found if found is not None and found.tenant == tenant else None

    def find(self, key: str) -> Interaction | None:
        """By interaction id or by encounter identifier (the device's encounter id)."""
        if key in self.interactions:
            return self.interactions[key]
        for item in self.interactions.values():
            if item.encounter.get("identifier") == key:
                return item
        return None

    def forget_interaction(self, interaction_id: str) -> bool:
        item = self.interactions.pop(interaction_id, None)
        if item is None:
            return False
        for rid in item.recordings:
            self._drop_recording(rid)
        self.save()
        return True

    # ------------------------------------------------------------------ recordings
    def add_recording(self, item: Interaction, data: bytes, fmt: str, offset: int,
                      duration: float | None) -> Recording:  # fmt: skip
        rid = str(uuid.uuid4())
        path = self.blobs / f"{rid}.bin"
        tmp = path.with_suffix(".tmp")
        with tmp.open("wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        tmp.replace(path)
        rec = Recording(
            recordingId=rid,
            format=fmt,
            bytes=len(data),
            sha256=hashlib.sha256(data).hexdigest(),
            audioOffset=offset,
            audioBytes=len(data) - offset,
            audioSha256=hashlib.sha256(data[offset:]).hexdigest(),
            durationS=duration,
            createdAt=now(),
        )
        self.recordings[rid] = rec
        item.recordings.append(rid)
        self.save()
        return rec

    def raw(self, recording_id: str) -> bytes:
        return (self.blobs / f"{recording_id}.bin").read_bytes()

    def audio(self, recording_id: str) -> bytes:
        rec = self.recordings[recording_id]
        return self.raw(recording_id)[rec.audioOffset :]

    def forget_recording(self, item: Interaction, recording_id: str) -> bool:
        if recording_id not in item.recordings:
            return False
        item.recordings.remove(recording_id)
        self._drop_recording(recording_id)
        self.save()
        return True

    def _drop_recording(self, recording_id: str) -> None:
        self.recordings.pop(recording_id, None)
        (self.blobs / f"{recording_id}.bin").unlink(missing_ok=True)

    # ------------------------------------------------------------------ inspection
    def describe(self, item: Interaction) -> dict[str, Any]:
        out = asdict(item)
        out["recordings"] = [asdict(self.recordings[r]) for r in item.recordings]
        out["transcripts"] = [
            {k: v for k, v in t.items() if k != "transcripts"} for t in item.transcripts.values()
        ]
        out["documents"] = list(item.documents.values())
        return out
