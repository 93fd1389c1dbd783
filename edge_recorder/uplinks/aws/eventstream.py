"""AWS event-stream framing: a small encoder written here, botocore's decoder for reading.

No importable, maintained library encodes event-stream messages for an HTTP/2 client (awscrt
keeps its codec in C, exposed only to its own RPC client; botocore only decodes), so the
encoder is the few lines below: `[total u32][headers u32][prelude CRC32][headers][payload]
[message CRC32]`, big endian. Decoding uses `botocore.eventstream.EventStreamBuffer`, which
checks both CRCs; tests cross-check this encoder against it.
"""

from __future__ import annotations

import json
import struct
import zlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from botocore import eventstream as _bes  # type: ignore[import-untyped]

from edge_recorder.uplinks.limits import STREAM_MESSAGE_MAX_BYTES, too_large

MAX_HEADERS_BYTES = 128 * 1024
MAX_PAYLOAD_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True)
class Timestamp:
    """A header of type 8 (milliseconds since the epoch), as `:date` needs."""

    millis: int


HeaderValue = str | bytes | Timestamp | bool | int


class FramingError(Exception):
    """Bytes that are not a valid event-stream message (bad CRC, length or header)."""


def encode_headers(headers: Mapping[str, HeaderValue]) -> bytes:
    """Headers in wire order: name_len u8, name, type u8, value."""
    out = bytearray()
    for name, value in headers.items():
        raw = name.encode()
        out += struct.pack("!B", len(raw)) + raw
        if value is True or value is False:
            out += b"\x00" if value else b"\x01"
        elif isinstance(value, int):
            out += b"\x04" + struct.pack("!i", value)
        elif isinstance(value, Timestamp):
            out += b"\x08" + struct.pack("!q", value.millis)
        elif isinstance(value, bytes):
            out += b"\x06" + struct.pack("!H", len(value)) + value
        else:
            text = value.encode()
            out += b"\x07" + struct.pack("!H", len(text)) + text
    return bytes(out)


def encode_message(headers: Mapping[str, HeaderValue], payload: bytes) -> bytes:
    """One complete message with both CRCs."""
    head = encode_headers(headers)
    if len(head) > MAX_HEADERS_BYTES or len(payload) > MAX_PAYLOAD_BYTES:
        raise ValueError("event-stream message too large")
    prelude = struct.pack("!II", 16 + len(head) + len(payload), len(head))
    prelude_crc = zlib.crc32(prelude)
    body = prelude + struct.pack("!I", prelude_crc) + head + payload
    return body + struct.pack("!I", zlib.crc32(body[8:], prelude_crc))


def event(event_type: str, payload: bytes, content_type: str) -> bytes:
    """An input/output event message (`:message-type event`)."""
    headers: dict[str, HeaderValue] = {
        ":message-type": "event",
        ":event-type": event_type,
        ":content-type": content_type,
    }
    return encode_message(headers, payload)


def exception(exception_type: str, message: str, key: str = "Message") -> bytes:
    """An exception message as the services send it: a JSON body whose text is `Message`
    (Transcribe streaming) or `message` (Connect Health's model)."""
    headers: dict[str, HeaderValue] = {
        ":message-type": "exception",
        ":exception-type": exception_type,
        ":content-type": "application/json",
    }
    return encode_message(headers, json.dumps({key: message}).encode())


@dataclass(frozen=True)
class Message:
    headers: dict[str, object]
    payload: bytes


class Decoder:
    """Incremental decoder: feed bytes, iterate complete messages (CRCs verified).

    An incomplete message may not grow past `max_message_bytes`: botocore would buffer up to
    24 MiB of payload (and copy the buffer on every feed) before judging a message, while the
    services send transcript events of a few KB (`limits.STREAM_MESSAGE_MAX_BYTES`)."""

    def __init__(self, max_message_bytes: int = STREAM_MESSAGE_MAX_BYTES) -> None:
        self._buffer = _bes.EventStreamBuffer()
        self._max = max_message_bytes
        self.pending = 0  # bytes fed but not yet part of a complete message

    def feed(self, data: bytes) -> Iterator[Message]:
        self._buffer.add_data(data)
        self.pending += len(data)
        while True:
            try:
                msg = next(self._buffer)
            except StopIteration:
                if self.pending > self._max:
                    what = "an event-stream message from the service"
                    raise FramingError(too_large(what, self._max, "http2").message) from None
                return
            except (_bes.ParserError, KeyError, struct.error, UnicodeDecodeError) as exc:
                raise FramingError(_describe(exc)) from exc
            self.pending -= msg.prelude.total_length
            yield Message(dict(msg.headers), bytes(msg.payload))


def _describe(exc: Exception) -> str:
    if isinstance(exc, _bes.ChecksumMismatch):
        return "event-stream CRC mismatch"
    if isinstance(exc, KeyError):
        return "event-stream header of unknown type"
    return f"invalid event-stream framing: {exc}"
