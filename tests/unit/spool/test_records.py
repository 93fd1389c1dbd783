"""Framing: headers round-trip, CRC32C catches damage, torn tails vs mid-file corruption."""

from __future__ import annotations

import io
import os
import uuid

import pytest

from edge_recorder.spool.records import (
    RECORD_HEADER_BYTES,
    SEGMENT_HEADER_BYTES,
    TAG_BYTES,
    RecordHeader,
    SegmentHeader,
    crc32c,
    find_valid_record_after,
    iter_records,
    pack_record,
    parse_record_header,
    read_record,
)

REC = uuid.uuid4().bytes


def _record(seq: int, offset: int, length: int) -> bytes:
    # The framing does not care what the ciphertext is; any bytes of the right size will do.
    return pack_record(RecordHeader(REC, seq, offset, length), os.urandom(length + TAG_BYTES))


def test_crc32c_is_the_castagnoli_polynomial() -> None:
    assert crc32c(b"123456789") == 0xE3069283  # the standard check value of CRC-32C


def test_segment_header_round_trips_and_rejects_damage() -> None:
    header = SegmentHeader(REC, os.urandom(32), 12345)
    raw = header.pack()
    assert len(raw) == SEGMENT_HEADER_BYTES
    assert SegmentHeader.unpack(raw) == header
    damaged = bytearray(raw)
    damaged[40] ^= 1
    assert SegmentHeader.unpack(bytes(damaged)) is None
    assert SegmentHeader.unpack(raw[:-1]) is None


def test_record_header_names_recording_offset_and_length() -> None:
    raw = _record(7, 3200, 100)
    parsed = parse_record_header(raw)
    assert parsed is not None
    header, _crc = parsed
    assert (header.recording, header.seq, header.offset, header.length) == (REC, 7, 3200, 100)
    assert len(raw) == header.disk_bytes == RECORD_HEADER_BYTES + 100 + TAG_BYTES


def test_pack_refuses_mismatched_ciphertext() -> None:
    with pytest.raises(ValueError):
        pack_record(RecordHeader(REC, 0, 0, 10), b"short")


@pytest.mark.parametrize("flip_at", [0, 5, 22, 30, 37, 45, 120])
def test_any_flipped_byte_invalidates_the_record(flip_at: int) -> None:
    raw = bytearray(_record(0, 0, 100))
    raw[flip_at] ^= 0x40
    assert read_record(io.BytesIO(bytes(raw)), 0, len(raw)) is None


def test_iteration_stops_at_a_torn_tail_and_finds_nothing_after_it() -> None:
    records = [_record(i, i * 50, 50) for i in range(5)]
    data = b"".join(records)
    torn = data + records[0][:30]  # a record cut mid-write
    f = io.BytesIO(torn)
    found = list(iter_records(f, 0, len(torn)))
    assert [r.header.seq for r in found] == [0, 1, 2, 3, 4]
    assert find_valid_record_after(f, len(data) + 1, len(torn)) is None


def test_corruption_mid_file_is_told_apart_by_valid_records_after_it() -> None:
    records = [_record(i, i * 50, 50) for i in range(5)]
    data = bytearray(b"".join(records))
    data[len(records[0]) + 60] ^= 0xFF  # inside record 1's ciphertext
    f = io.BytesIO(bytes(data))
    found = list(iter_records(f, 0, len(data)))
    assert [r.header.seq for r in found] == [0]
    bad = len(records[0])
    assert find_valid_record_after(f, bad + 1, len(data), chunk=64) == 2 * len(records[0])


def test_a_corrupt_length_cannot_make_the_reader_allocate_gigabytes() -> None:
    raw = bytearray(_record(0, 0, 10))
    raw[32:36] = (2**31).to_bytes(4, "little")
    assert parse_record_header(bytes(raw)) is None
