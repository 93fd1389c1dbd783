"""Dice STREAM messages: building what the device sends, reading what the service answers.

Pure functions (no I/O), so the wire format is tested directly. Every message is a JSON text
frame [doc]. The device's audio goes as `audio_chunk` messages of at most 1 s each [doc]
carrying base64 of raw PCM s16le mono at the stream's `sample_rate` [inferred from the
near-identical "listen" API this protocol copies].

Acknowledgement: the service sends none. WebSocket ping/pong stands in: a ping's payload is
`ack:<offset>` (the recording offset after every audio byte written before it) and the pong
echoes it (RFC 6455 5.5.3), proving the server read every frame before the ping.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from edge_recorder.config.services.dice import DiceConfig

SEC_TITLES = frozenset(
    {
        "SOAP_SUBJECTIVE",
        "SOAP_OBJECTIVE",
        "SOAP_ASSESSMENT",
        "SOAP_PLAN",
        "REASON_FOR_REFERRAL",
        "HISTORY_OF_PRESENT_ILLNESS",
        "PAST_MEDICAL_HISTORY",
        "MEDICATIONS",
        "ALLERGIES",
        "SOCIAL_HISTORY",
        "FAMILY_HISTORY",
        "ASSESSMENT",
        "PLAN",
    }
)
MAX_CHUNK_MS = 1000  # [doc] "Max duration 1s"
BYTES_PER_SAMPLE = 2  # PCM16 mono
_ACK_PREFIX = b"ack:"


class MessageError(ValueError):
    """A server message the client cannot read (becomes a PROTOCOL UplinkError)."""


# ------------------------------------------------------------------ what the device sends


def _dump(message: dict[str, Any]) -> str:
    return json.dumps(message, separators=(",", ":"))


def stream_request(config: DiceConfig, track_id: str, sample_rate: int) -> str:
    """The first message: stream and note settings [doc]. One track per stream."""
    outputs: str | list[str] = (
        config.output_objects[0] if len(config.output_objects) == 1 else list(config.output_objects)
    )  # [inferred] "both" as a list; a single output as the documented string
    return _dump(
        {
            "object": "stream_request",
            "output_objects": outputs,
            "streams": [{"id": track_id, "speaker": config.speaker}],
            "sample_rate": sample_rate,
            "language": config.language,
            "note_template": config.note_template,
            "style": config.style,
            "transcribe_gen_mode": config.transcribe_gen_mode,
            "note_gen_mode": config.note_gen_mode,
        }
    )


def audio_chunk(track_id: str, pcm: bytes) -> str:
    return _dump(
        {
            "object": "audio_chunk",
            "payload": base64.b64encode(pcm).decode("ascii"),
            "stream_id": track_id,
        }
    )


STOP = _dump({"object": "stop"})


def chunk_bytes(sample_rate: int, chunk_ms: int) -> int:
    """Bytes of one audio_chunk: `chunk_ms` of PCM16 mono, whole samples, never over 1 s."""
    if sample_rate <= 0:
        raise ValueError("sample_rate must be positive")
    ms = max(1, min(chunk_ms, MAX_CHUNK_MS))
    samples = max(1, sample_rate * ms // 1000)
    return samples * BYTES_PER_SAMPLE


def split_audio(data: bytes, max_bytes: int) -> Iterator[bytes]:
    """`data` in pieces of at most `max_bytes` (the caller keeps whole samples)."""
    for start in range(0, len(data), max_bytes):
        yield data[start : start + max_bytes]


def ack_ping(offset: int) -> bytes:
    """Ping payload naming the recording offset it confirms once its pong arrives."""
    return _ACK_PREFIX + str(offset).encode("ascii")


def acked_offset(pong: bytes) -> int | None:
    """The offset a pong confirms; None for a pong that is not ours (a heartbeat)."""
    if not pong.startswith(_ACK_PREFIX):
        return None
    digits = pong[len(_ACK_PREFIX) :]
    if not digits.isdigit() or len(digits) > 19:
        return None
    return int(digits)


# ------------------------------------------------------------------ what the service sends


@dataclass(frozen=True)
class TranscriptItem:
    """A (possibly partial) transcript segment; later items with the same id replace it."""

    id: str
    text: str = field(repr=False)  # PHI: never in a repr or a log line
    speaker: str | None
    start_offset_ms: int | None
    end_offset_ms: int | None
    is_final: bool


@dataclass(frozen=True)
class NoteSection:
    sec_title: str
    sec_heading: str = field(repr=False)
    sec_text: str = field(repr=False)


@dataclass(frozen=True)
class Note:
    """The clinical note [doc: sent as a `transcript_item` object carrying `sections`]."""

    id: str
    sections: tuple[NoteSection, ...]

    @property
    def titles(self) -> tuple[str, ...]:
        return tuple(s.sec_title for s in self.sections)


@dataclass(frozen=True)
class DurationLimit:
    remaining_sec: float


@dataclass(frozen=True)
class ErrorMsg:
    message: str


ServerMessage = TranscriptItem | Note | DurationLimit | ErrorMsg


def _int_or_none(body: dict[str, Any], key: str) -> int | None:
    value = body.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise MessageError(f"{key} must be a number")
    return int(value)


def _str(body: dict[str, Any], key: str, default: str | None = None) -> str:
    value = body.get(key, default)
    if not isinstance(value, str):
        raise MessageError(f"{key} must be a string")
    return value


def _note(body: dict[str, Any]) -> Note:
    raw = body["sections"]
    if not isinstance(raw, list):
        raise MessageError("sections must be a list")
    sections = []
    for item in raw:
        if not isinstance(item, dict):
            raise MessageError("each note section must be an object")
        sections.append(
            NoteSection(
                _str(item, "sec_title"), _str(item, "sec_heading", ""), _str(item, "sec_text", "")
            )
        )
    return Note(str(body.get("id", "")), tuple(sections))


def parse_server_message(text: str) -> ServerMessage | None:
    """One server text frame; None for an object this client does not know (ignored)."""
    try:
        body = json.loads(text)
    except (ValueError, RecursionError):  # RecursionError: absurdly deep nesting
        raise MessageError("server sent a text frame that is not JSON") from None
    if not isinstance(body, dict):
        raise MessageError("server message is not a JSON object")
    kind = body.get("object")
    if kind in ("transcript_item", "note") and "sections" in body:
        return _note(body)
    if kind == "transcript_item":
        final = body.get("is_final", False)
        if not isinstance(final, bool):
            raise MessageError("is_final must be a boolean")
        speaker = body.get("speaker")
        return TranscriptItem(
            id=_str(body, "id"),
            text=_str(body, "text", ""),
            speaker=speaker if isinstance(speaker, str) else None,
            start_offset_ms=_int_or_none(body, "start_offset_ms"),
            end_offset_ms=_int_or_none(body, "end_offset_ms"),
            is_final=final,
        )
    if kind == "duration_limit":
        remaining = body.get("remaining_sec")
        if isinstance(remaining, bool) or not isinstance(remaining, int | float):
            raise MessageError("remaining_sec must be a number")
        return DurationLimit(float(remaining))
    if kind == "error_msg":
        message = body.get("message")
        return ErrorMsg(message if isinstance(message, str) else json.dumps(message))
    return None


@dataclass
class Transcript:
    """Transcript items by id, updated until final [doc]. Holds PHI: memory only."""

    items: dict[str, TranscriptItem] = field(default_factory=dict)

    def update(self, item: TranscriptItem) -> None:
        current = self.items.get(item.id)
        if current is not None and current.is_final:
            return  # a final item is not changed again
        self.items[item.id] = item

    @property
    def count(self) -> int:
        return len(self.items)

    @property
    def final_count(self) -> int:
        return sum(1 for item in self.items.values() if item.is_final)

    def as_json(self) -> list[dict[str, Any]]:
        return [
            {
                "id": i.id,
                "text": i.text,
                "speaker": i.speaker,
                "start_offset_ms": i.start_offset_ms,
                "end_offset_ms": i.end_offset_ms,
                "is_final": i.is_final,
            }
            for i in self.items.values()
        ]


def note_json(note: Note) -> dict[str, Any]:
    return {
        "id": note.id,
        "sections": [
            {"sec_title": s.sec_title, "sec_heading": s.sec_heading, "sec_text": s.sec_text}
            for s in note.sections
        ],
    }


def summary_references(
    transcript_items: int, note_titles: Sequence[str], streams: int
) -> tuple[tuple[str, str], ...]:
    """What StartProcessing reports for Dice: counts and section titles, never text."""
    refs = [("streams", str(streams)), ("transcript_items", str(transcript_items))]
    known = [t for t in dict.fromkeys(note_titles) if t in SEC_TITLES]
    if known:
        refs.append(("note_sections", ",".join(known)))
    return tuple(refs)
