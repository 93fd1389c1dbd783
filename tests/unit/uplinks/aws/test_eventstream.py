"""The hand-written event-stream encoder, cross-checked with botocore's independent decoder."""

from __future__ import annotations

import struct

import pytest
from botocore.eventstream import EventStreamBuffer  # type: ignore[import-untyped]
from hypothesis import given
from hypothesis import strategies as st

from edge_recorder.uplinks.aws import eventstream as es

# amazon-transcribe 0.6.4's EventStreamMessageSerializer output for these headers and payload
AWSLABS_AUDIO_EVENT = bytes.fromhex(
    "0000006a00000058d31069430d3a6d6573736167652d747970650700056576656e740b3a6576656e742d74797065"
    "07000a417564696f4576656e740d3a636f6e74656e742d747970650700186170706c69636174696f6e2f6f6374"
    "65742d73747265616d0102f731b60a"
)

names = st.text(st.characters(min_codepoint=33, max_codepoint=126), min_size=1, max_size=20)
values = st.one_of(
    st.text(max_size=50),
    st.binary(max_size=50),
    st.integers(-(2**31), 2**31 - 1),
    st.booleans(),
    st.builds(es.Timestamp, st.integers(0, 2**62)),
)


def _botocore(data: bytes) -> list[tuple[dict[str, object], bytes]]:
    buf = EventStreamBuffer()
    buf.add_data(data)
    return [(dict(m.headers), bytes(m.payload)) for m in buf]


def test_matches_the_awslabs_serializer_byte_for_byte() -> None:
    assert es.event("AudioEvent", b"\x01\x02", "application/octet-stream") == AWSLABS_AUDIO_EVENT


@given(st.dictionaries(names, values, max_size=6), st.binary(max_size=3000))
def test_botocore_decodes_what_we_encode(
    headers: dict[str, es.HeaderValue], payload: bytes
) -> None:
    ((decoded, body),) = _botocore(es.encode_message(headers, payload))
    assert body == payload
    expected = {k: (v.millis if isinstance(v, es.Timestamp) else v) for k, v in headers.items()}
    assert decoded == expected


def test_decoder_splits_messages_across_arbitrary_chunks() -> None:
    stream = b"".join(
        es.event("TranscriptEvent", bytes([i]) * i, "application/json") for i in range(40)
    )
    decoder = es.Decoder()
    got = []
    for i in range(0, len(stream), 7):
        got += [m.payload for m in decoder.feed(stream[i : i + 7])]
    assert got == [bytes([i]) * i for i in range(40)] and decoder.pending == 0


@pytest.mark.parametrize("where", [9, 30, -2])  # prelude CRC, headers, message CRC
def test_corruption_is_a_framing_error(where: int) -> None:
    data = bytearray(es.event("AudioEvent", b"x" * 20, "application/octet-stream"))
    data[where] ^= 0xFF
    with pytest.raises(es.FramingError, match="CRC"):
        list(es.Decoder().feed(bytes(data)))


def test_unknown_header_type_is_a_framing_error() -> None:
    head = b"\x01a\x63"  # header type 99
    prelude = struct.pack("!II", 16 + len(head), len(head))
    import zlib

    crc = zlib.crc32(prelude)
    body = prelude + struct.pack("!I", crc) + head
    data = body + struct.pack("!I", zlib.crc32(body[8:], crc))
    with pytest.raises(es.FramingError):
        list(es.Decoder().feed(data))


def test_exception_message_shape() -> None:
    ((headers, body),) = _botocore(es.exception("BadRequestException", "no"))
    assert headers[":message-type"] == "exception"
    assert headers[":exception-type"] == "BadRequestException" and b'"Message": "no"' in body
