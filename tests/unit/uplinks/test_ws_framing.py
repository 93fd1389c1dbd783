"""WebSocket framing: header blocks on and off, binary DataChunk frames, proto JSON."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime

import pytest
from google.protobuf import json_format

from edge_recorder._proto.ambient.audio.v1 import audio_streaming_pb2 as pb
from edge_recorder.uplinks.aas.ws_framing import (
    Closed,
    close_error,
    data_chunk_frame,
    format_text_frame,
    message_json,
    parse_response,
    parse_text_frame,
)
from edge_recorder.uplinks.base import ErrorKind


def test_client_text_frame_has_header_block_then_json() -> None:
    when = datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
    text = format_text_frame("RecordingOpen", {"a": 1}, request_id="rid", now=when)
    assert text == (
        "Path=RecordingOpen\r\nX-MS-Request-Id=rid\r\nX-Timestamp=2026-01-02T03:04:05.678Z"
        '\r\n\r\n{"a":1}'
    )
    frame = parse_text_frame(text)
    assert frame.headers == {
        "Path": "RecordingOpen",
        "X-MS-Request-Id": "rid",
        "X-Timestamp": "2026-01-02T03:04:05.678Z",
    }
    assert frame.body == {"a": 1}


@pytest.mark.parametrize(
    "text",
    [
        '{"dataStored":{"dataStored":42}}',
        '  \n{"dataStored":{"dataStored":42}}',
        'Path=DataStored\r\nX-MS-Request-Id=x\r\n\r\n{"dataStored":{"dataStored":42}}',
        'Path=DataStored\nX-Timestamp=t\n\n{"dataStored":{"dataStored":"42"}}',
    ],
)
def test_server_frames_parse_with_and_without_header_block(text: str) -> None:
    response = parse_response(parse_text_frame(text).body)
    assert response.WhichOneof("response") == "data_stored"
    assert response.data_stored.data_stored == 42


@pytest.mark.parametrize(
    "text",
    ["Path=X\r\n{no blank line}", "Path=X\r\nnot a header\r\n\r\n{}", "Path=X\r\n\r\nnot json", ""],
)
def test_malformed_text_frames_are_clear_errors(text: str) -> None:
    with pytest.raises(ValueError):
        parse_text_frame(text)


def test_parse_response_rejects_non_objects() -> None:
    with pytest.raises(ValueError):
        parse_response([1, 2])


def test_data_chunk_frame_is_json_with_offset_and_base64() -> None:
    frame = json.loads(data_chunk_frame(320, b"\x00\x01\xff"))
    assert frame == {"DataStart": 320, "Data": base64.b64encode(b"\x00\x01\xff").decode()}
    chunk = pb.DataChunkRequest()
    json_format.ParseDict(frame, chunk)  # the proto's JSON mapping reads the same frame
    assert (chunk.data_start, chunk.data) == (320, b"\x00\x01\xff")


def test_message_json_keeps_int64_as_numbers() -> None:
    msg = pb.RecordingOpenRequest(recording_id="r", starting_offset=12345, sequence_number=2)
    body = message_json(msg, int_fields=("startingOffset",))
    assert body["startingOffset"] == 12345 and body["recordingId"] == "r"
    assert body["sequenceNumber"] == 2


@pytest.mark.parametrize(
    ("code", "reason", "kind", "retryable"),
    [
        (4400, "malformed frame", ErrorKind.INVALID, False),
        (4404, "", ErrorKind.NOT_FOUND, False),
        (4409, "differ", ErrorKind.CONFLICT, False),
        (4416, "gap", ErrorKind.CONFLICT, False),
        (4503, "injected", ErrorKind.UNAVAILABLE, True),
        (1008, "", ErrorKind.INVALID, False),
        (1011, "", ErrorKind.SERVER, True),
        (1006, "", ErrorKind.UNAVAILABLE, True),
        (None, "", ErrorKind.UNAVAILABLE, True),
        (1000, "", ErrorKind.PROTOCOL, True),
    ],
)
def test_close_codes_map_to_error_kinds(
    code: int | None, reason: str, kind: ErrorKind, retryable: bool
) -> None:
    err = close_error(Closed(code, reason), "recordingCloses")
    assert (err.kind, err.retryable, err.transport) == (kind, retryable, "websocket")
    if reason:
        assert reason in err.message
