"""Pure rules of the emulated STREAM service: message order, schema, enums, chunk size.

Every refusal is a `ProtocolViolation` whose text becomes an `error_msg` [doc] (after which
the emulator closes the socket [inferred]). Enums are the sibling REST API's [doc].
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

OUTPUT_OBJECTS = ("transcript", "note")
LANGUAGES = ("en-US", "fr-CA")
NOTE_TEMPLATES = ("soap", "consult")
STYLES = ("paragraph", "bullet", "auto")
GEN_MODES = ("fast", "medium", "best")
SPEAKERS = ("provider", "patient", "unknown")
SECTIONS = {
    "soap": ("SOAP_SUBJECTIVE", "SOAP_OBJECTIVE", "SOAP_ASSESSMENT", "SOAP_PLAN"),
    "consult": (
        "REASON_FOR_REFERRAL",
        "HISTORY_OF_PRESENT_ILLNESS",
        "PAST_MEDICAL_HISTORY",
        "MEDICATIONS",
        "ALLERGIES",
        "SOCIAL_HISTORY",
        "FAMILY_HISTORY",
        "ASSESSMENT",
        "PLAN",
    ),
}


class ProtocolViolation(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class StreamConfig:
    outputs: tuple[str, ...]
    tracks: dict[str, str]  # track id → speaker
    sample_rate: int
    language: str
    note_template: str
    style: str
    transcribe_gen_mode: str
    note_gen_mode: str

    def as_json(self) -> dict[str, Any]:
        return {
            "outputObjects": list(self.outputs),
            "tracks": [{"id": k, "speaker": v} for k, v in self.tracks.items()],
            "sampleRate": self.sample_rate,
            "language": self.language,
            "noteTemplate": self.note_template,
            "style": self.style,
            "transcribeGenMode": self.transcribe_gen_mode,
            "noteGenMode": self.note_gen_mode,
        }


def parse_json(text: str) -> dict[str, Any]:
    try:
        body = json.loads(text)
    except ValueError:
        raise ProtocolViolation("message is not valid JSON") from None
    if not isinstance(body, dict) or not isinstance(body.get("object"), str):
        raise ProtocolViolation("message must be a JSON object with an 'object' field")
    return body


def _enum(body: dict[str, Any], key: str, allowed: tuple[str, ...]) -> str:
    value = body.get(key)
    if value not in allowed:
        raise ProtocolViolation(f"{key} must be one of {', '.join(allowed)}")
    return str(value)


def parse_stream_request(body: dict[str, Any]) -> StreamConfig:
    outputs = body.get("output_objects")
    listed = [outputs] if isinstance(outputs, str) else outputs
    if not isinstance(listed, list) or not listed or any(o not in OUTPUT_OBJECTS for o in listed):
        raise ProtocolViolation("output_objects must be 'transcript', 'note' or both")
    streams = body.get("streams")
    if not isinstance(streams, list) or not streams:
        raise ProtocolViolation("streams must be a non-empty list")
    tracks: dict[str, str] = {}
    for entry in streams:
        if not isinstance(entry, dict) or not isinstance(entry.get("id"), str) or not entry["id"]:
            raise ProtocolViolation("each stream needs a string id")
        if entry["id"] in tracks:
            raise ProtocolViolation(f"duplicate stream id {entry['id']!r}")
        tracks[entry["id"]] = _enum(entry, "speaker", SPEAKERS)
    rate = body.get("sample_rate")
    if not isinstance(rate, int) or isinstance(rate, bool) or not 8000 <= rate <= 48000:
        raise ProtocolViolation("sample_rate must be an integer between 8000 and 48000")
    return StreamConfig(
        outputs=tuple(dict.fromkeys(listed)),
        tracks=tracks,
        sample_rate=rate,
        language=_enum(body, "language", LANGUAGES),
        note_template=_enum(body, "note_template", NOTE_TEMPLATES),
        style=_enum(body, "style", STYLES),
        transcribe_gen_mode=_enum(body, "transcribe_gen_mode", GEN_MODES),
        note_gen_mode=_enum(body, "note_gen_mode", GEN_MODES),
    )


def parse_audio_chunk(
    body: dict[str, Any], config: StreamConfig, max_chunk_s: float
) -> tuple[str, bytes]:
    """(track id, PCM bytes) of an audio_chunk, checked against the stream's settings."""
    track = body.get("stream_id")
    if track not in config.tracks:
        raise ProtocolViolation(f"audio_chunk for unknown stream_id {track!r}")
    payload = body.get("payload")
    if not isinstance(payload, str) or not payload:
        raise ProtocolViolation("audio_chunk payload must be a non-empty base64 string")
    try:
        pcm = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise ProtocolViolation("audio_chunk payload is not valid base64") from None
    if len(pcm) % 2:
        raise ProtocolViolation("audio_chunk payload is not whole 16-bit samples")
    limit = int(config.sample_rate * max_chunk_s) * 2
    if len(pcm) > limit:
        raise ProtocolViolation(
            f"audio_chunk carries {len(pcm) / 2 / config.sample_rate:.3f} s of audio; max 1 s"
        )
    return str(track), pcm


@dataclass
class Transcriber:
    """Emulated transcription: one item per `item_s` of audio, partial until complete."""

    sample_rate: int
    item_s: float
    speaker: str
    received: int = 0  # bytes
    item_index: int = 0
    item_start: int = 0
    items: list[str] = field(default_factory=list)

    def feed(self, pcm: bytes) -> list[dict[str, Any]]:
        self.received += len(pcm)
        per_item = max(2, int(self.sample_rate * self.item_s) * 2)
        out = [self._item(final=False)]
        if self.received - self.item_start >= per_item:
            out = [self._item(final=True)]
            self.item_index += 1
            self.item_start = self.received
        return out

    def flush(self) -> list[dict[str, Any]]:
        if self.received > self.item_start:
            item = self._item(final=True)
            self.item_index += 1
            self.item_start = self.received
            return [item]
        return []

    def _ms(self, count: int) -> int:
        return count * 1000 // (2 * self.sample_rate)

    def _item(self, final: bool) -> dict[str, Any]:
        item_id = f"item-{self.item_index}"
        if item_id not in self.items:
            self.items.append(item_id)
        return {
            "object": "transcript_item",
            "id": item_id,
            "text": f"emulated speech {self.item_index}",
            "speaker": self.speaker,
            "start_offset_ms": self._ms(self.item_start),
            "end_offset_ms": self._ms(self.received),
            "is_final": final,
        }


def note_message(template: str, audio: bytes, sample_rate: int) -> dict[str, Any]:
    """The note [doc: a `transcript_item` object with `sections`]; content says what arrived."""
    digest = hashlib.sha256(audio).hexdigest()
    seconds = len(audio) / 2 / sample_rate
    return {
        "object": "transcript_item",
        "id": "note",
        "is_final": True,
        "sections": [
            {
                "sec_title": title,
                "sec_heading": title.replace("_", " ").title(),
                "sec_text": f"Emulated from {seconds:.2f} s of audio (sha256 {digest[:16]}).",
            }
            for title in SECTIONS[template]
        ],
    }


def countdown(limit_s: float, countdown_s: float, before_s: float, after_s: float) -> list[int]:
    """Whole `remaining_sec` values crossed while a stream's audio grows from `before_s` to
    `after_s` seconds (the countdown runs from `countdown_s` down to 0 at the limit)."""
    return [r for r in range(int(countdown_s), -1, -1) if before_s < limit_s - r <= after_s]
