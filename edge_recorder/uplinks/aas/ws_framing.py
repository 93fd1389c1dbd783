"""WebSocket framing for AAS, pure: header-block text frames, binary DataChunk frames, JSON.

The live service wraps client text frames as `Path=...` / `X-MS-Request-Id=...` /
`X-Timestamp=...` lines, a blank line, then the proto3 JSON of the message. Server frames come
with or without that block. Kept apart from the socket code so each rule is unit-tested.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from google.protobuf import json_format
from google.protobuf.message import Message

from edge_recorder._proto.ambient.audio.v1 import audio_streaming_pb2 as pb
from edge_recorder.uplinks.base import ErrorKind, UplinkError, kind_for_http_status


@dataclass(frozen=True)
class TextFrame:
    headers: dict[str, str]
    body: Any  # parsed JSON


def format_text_frame(
    path: str, body: dict[str, Any], request_id: str | None = None, now: datetime | None = None
) -> str:
    """`Path=...\\r\\nX-MS-Request-Id=...\\r\\nX-Timestamp=...\\r\\n\\r\\n{json}`."""
    stamp = (now or datetime.now(UTC)).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    head = f"Path={path}\r\nX-MS-Request-Id={request_id or uuid.uuid4()}\r\nX-Timestamp={stamp}"
    return head + "\r\n\r\n" + json.dumps(body, separators=(",", ":"))


def parse_text_frame(text: str) -> TextFrame:
    """Split an optional `Key=Value` header block from the JSON body; ValueError if malformed."""
    stripped = text.lstrip()
    headers: dict[str, str] = {}
    if stripped[:1] not in ("{", "["):
        normalised = stripped.replace("\r\n", "\n")
        head, sep, rest = normalised.partition("\n\n")
        if not sep:
            raise ValueError("text frame has neither a JSON body nor a header block")
        for line in head.split("\n"):
            key, eq, value = line.partition("=")
            if not eq or not key.strip():
                raise ValueError(f"malformed header line {line[:60]!r}")
            headers[key.strip()] = value.strip()
        stripped = rest
    try:
        body = json.loads(stripped)
    except (ValueError, RecursionError) as exc:  # RecursionError: absurdly deep nesting
        raise ValueError(f"text frame body is not JSON: {exc}") from None
    return TextFrame(headers, body)


def data_chunk_frame(offset: int, data: bytes) -> bytes:
    """The binary DataChunk frame: JSON text with the offset and base64 audio."""
    payload = {"DataStart": offset, "Data": base64.b64encode(data).decode("ascii")}
    return json.dumps(payload, separators=(",", ":")).encode("ascii")


def message_json(message: Message, int_fields: Sequence[str] = ()) -> dict[str, Any]:
    """Proto3 JSON of `message`, with the named int64 fields as JSON numbers, not strings."""
    body: dict[str, Any] = json_format.MessageToDict(message)
    for name in int_fields:
        if name in body:
            body[name] = int(body[name])
    return body


def parse_response(body: Any) -> pb.RecordAmbientResponse:
    """A server JSON answer as a RecordAmbientResponse; numbers may be strings or ints."""
    if not isinstance(body, dict):
        raise ValueError("server message is not a JSON object")
    response = pb.RecordAmbientResponse()
    json_format.ParseDict(body, response, ignore_unknown_fields=True)
    return response


@dataclass(frozen=True)
class Closed:
    """The socket closed: the close code (None when the connection just dropped) and reason."""

    code: int | None
    reason: str = ""


# Close codes that mean the link or the server failed, not that our request was refused.
_TRANSIENT_CLOSE = {
    1001: ErrorKind.UNAVAILABLE,
    1006: ErrorKind.UNAVAILABLE,
    1011: ErrorKind.SERVER,
    1012: ErrorKind.UNAVAILABLE,
    1013: ErrorKind.UNAVAILABLE,
    1014: ErrorKind.UNAVAILABLE,
}


def close_error(closed: Closed, waiting_for: str) -> UplinkError:
    """Why a socket closed before the answer we waited for, as an `UplinkError`.

    Application codes 4000-4999 carry an HTTP-like status (4000 + status: 4400 invalid,
    4409 conflict, 4416 gap, 4503 unavailable); a policy close (1008) with no message is how
    the service refuses an invalid RecordingOpen; a dropped link is retryable.
    """
    code = closed.code
    if code is not None and 4000 <= code <= 4999:
        status = code - 4000
        kind = ErrorKind.CONFLICT if status in (409, 416) else kind_for_http_status(status)
        message = closed.reason or f"server closed the WebSocket with code {code}"
        return UplinkError(kind, message, transport="websocket", status=code)
    if code is None or code in _TRANSIENT_CLOSE:
        return UplinkError(
            _TRANSIENT_CLOSE.get(code or 1006, ErrorKind.UNAVAILABLE),
            f"WebSocket lost (code {code}) while waiting for {waiting_for}",
            transport="websocket",
            status=code,
        )
    kind = ErrorKind.PROTOCOL if code == 1000 else ErrorKind.INVALID
    detail = f": {closed.reason}" if closed.reason else ""
    return UplinkError(
        kind,
        f"server closed the WebSocket (code {code}) without answering {waiting_for}{detail}",
        transport="websocket",
        status=code,
    )
