"""The pure parts of the response caps (issue #19 item 4): sizes as shown, JSON that never
raises, and the AWS event-stream decoder's bound on an incomplete message (the AWS transport
runs over awscrt's HTTP/2 with TLS only, so its cap is tested here, at the decoder)."""

from __future__ import annotations

import struct
import zlib

import pytest

from edge_recorder.uplinks.aws import eventstream as es
from edge_recorder.uplinks.base import ErrorKind
from edge_recorder.uplinks.limits import (
    KIB,
    MIB,
    STREAM_MESSAGE_MAX_BYTES,
    NotJson,
    human_size,
    parse_json,
    too_large,
)


@pytest.mark.parametrize(
    ("n_bytes", "shown"),
    [(300, "300 B"), (64 * KIB, "64 KiB"), (MIB, "1 MiB"), (50_000_000, "47.7 MiB")],
)
def test_human_size(n_bytes: int, shown: str) -> None:
    assert human_size(n_bytes) == shown


def test_too_large_is_a_retryable_protocol_error() -> None:
    err = too_large("the answer to GET /x", MIB, "rest", declared=300 * MIB, status=200)
    assert (err.kind, err.retryable, err.transport, err.status) == (
        ErrorKind.PROTOCOL,
        True,
        "rest",
        200,
    )
    assert err.message == (
        "the answer to GET /x is larger than 1 MiB, the device's limit (it declared 300 MiB): "
        "discarded"
    )


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"\xff\xfe\x00", "not UTF-8 text"),
        (b"<html>", "not JSON"),
        ("{'single': 'quotes'}", "not JSON"),
        (b"[" * 50_000, "JSON nested too deeply"),
    ],
)
def test_parse_json_never_raises(raw: bytes | str, reason: str) -> None:
    parsed = parse_json(raw)
    assert isinstance(parsed, NotJson) and parsed.reason == reason


def test_parse_json_reads_json() -> None:
    assert parse_json(b'{"a": [1, null]}') == {"a": [1, None]}
    assert parse_json("null") is None


def _prelude(total_length: int, headers_length: int = 0) -> bytes:
    prelude = struct.pack("!II", total_length, headers_length)
    return prelude + struct.pack("!I", zlib.crc32(prelude))


def test_event_stream_message_over_the_cap_is_refused_before_it_is_buffered() -> None:
    """A prelude announcing 20 MB (under botocore's own 24 MiB limit, which would buffer it
    all): the decoder gives up once the incomplete message passes 1 MiB."""
    decoder = es.Decoder()
    fed = 0
    with pytest.raises(es.FramingError) as info:
        data = _prelude(20_000_000)
        while fed <= 2 * STREAM_MESSAGE_MAX_BYTES:
            fed += len(data)
            list(decoder.feed(data))
            data = b"\x00" * (64 * KIB)
    assert STREAM_MESSAGE_MAX_BYTES < fed <= STREAM_MESSAGE_MAX_BYTES + 64 * KIB + 12
    assert str(info.value) == (
        "an event-stream message from the service is larger than 1 MiB, the device's limit: "
        "discarded"
    )


def test_many_small_event_stream_messages_pass_whatever_their_total() -> None:
    """The cap is per message: 2 MiB of complete 8 KiB events in one chunk all decode."""
    message = es.event("TranscriptEvent", b"x" * (8 * KIB), "application/json")
    count = 2 * MIB // len(message) + 1
    decoded = list(es.Decoder().feed(message * count))
    assert len(decoded) == count and decoded[0].payload == b"x" * (8 * KIB)
