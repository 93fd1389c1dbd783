"""The length of a streamed FLAC file, for readers that need it in STREAMINFO (pure).

The device encodes FLAC as a stream (`codecs.FlacEncoder`): the header goes out before the
audio exists, so STREAMINFO says "total samples: unknown" (0). ffmpeg decodes such a file;
libsndfile reports 2^63-1 frames and fails near the end ("Internal psf_fseek() failed"),
losing the last block. `with_total_samples` finds the real length from the last frame's
header (frame number x block size + that frame's block size, for the fixed-block-size streams
libFLAC writes) and returns the file with it filled in, so libsndfile reads every sample.
Format: https://xiph.org/flac/format.html (frame header, CRC-8 poly 0x07).
"""

from __future__ import annotations

MAGIC = b"fLaC"
STREAMINFO_TOTAL = 4 + 4 + 13  # "fLaC", the block header, then 13 bytes before the 36-bit total
_BLOCK_SIZES = {1: 192, **{c: 576 << (c - 2) for c in range(2, 6)}}
_BLOCK_SIZES.update({c: 256 << (c - 8) for c in range(8, 16)})
_SAMPLE_RATE_EXTRA = {12: 1, 13: 2, 14: 2}  # bytes of sample rate at the end of the header
SCAN_BYTES = 1 << 20  # the last frame starts within this many bytes of the end


class FlacLengthError(ValueError):
    """Not a fixed-block-size FLAC stream whose last frame header could be found."""


def crc8(data: bytes) -> int:
    crc = 0
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = ((crc << 1) ^ 0x07) & 0xFF if crc & 0x80 else (crc << 1) & 0xFF
    return crc


def total_samples(data: bytes) -> int:
    """STREAMINFO's total samples (0: unknown)."""
    _check(data)
    raw = int.from_bytes(data[STREAMINFO_TOTAL : STREAMINFO_TOTAL + 5], "big")
    return raw & 0xFFFFFFFFF


def with_total_samples(data: bytes) -> bytes:
    """`data` with STREAMINFO's total samples filled in from the frames (unchanged if known)."""
    if total_samples(data):
        return data
    max_block = int.from_bytes(data[8 + 2 : 8 + 4], "big")
    start = max(STREAMINFO_TOTAL, len(data) - SCAN_BYTES)
    position = len(data) - 2
    while position >= start:
        position = data.rfind(b"\xff\xf8", start, position + 2)
        if position < 0:
            break
        header = _frame_header(data, position)
        if header is not None:
            number, block = header
            total = number * max_block + block
            patched = bytearray(data)
            top = data[STREAMINFO_TOTAL] & 0xF0
            patched[STREAMINFO_TOTAL : STREAMINFO_TOTAL + 5] = ((top << 32) | total).to_bytes(
                5, "big"
            )
            return bytes(patched)
        position -= 1
    raise FlacLengthError("no FLAC frame header found near the end")


def _check(data: bytes) -> None:
    if len(data) < STREAMINFO_TOTAL + 5 or data[:4] != MAGIC or data[4] & 0x7F != 0:
        raise FlacLengthError("not a FLAC file starting with STREAMINFO")


def _frame_header(data: bytes, at: int) -> tuple[int, int] | None:
    """(frame number, block size) of a valid fixed-block-size frame header at `at`, or None."""
    if at + 6 > len(data):
        return None
    block_code, rate_code = data[at + 2] >> 4, data[at + 2] & 0x0F
    if block_code == 0 or rate_code == 15 or data[at + 3] & 0x01:
        return None
    number, cursor = _utf8_number(data, at + 4)
    if number is None:
        return None
    if block_code == 6:
        block, cursor = data[cursor] + 1, cursor + 1
    elif block_code == 7:
        block, cursor = int.from_bytes(data[cursor : cursor + 2], "big") + 1, cursor + 2
    else:
        block = _BLOCK_SIZES[block_code]
    cursor += _SAMPLE_RATE_EXTRA.get(rate_code, 0)
    if cursor >= len(data) or crc8(data[at:cursor]) != data[cursor]:
        return None
    return number, block


def _utf8_number(data: bytes, at: int) -> tuple[int | None, int]:
    """FLAC's "UTF-8"-coded frame number: (value, index after it); None when malformed."""
    if at >= len(data):
        return None, at
    first = data[at]
    if first < 0x80:
        return first, at + 1
    length = 0
    while length < 7 and first & (0x80 >> length):
        length += 1
    if length < 2 or at + length > len(data):
        return None, at
    value = first & (0x7F >> length)
    for byte in data[at + 1 : at + length]:
        if byte & 0xC0 != 0x80:
            return None, at
        value = (value << 6) | (byte & 0x3F)
    return value, at + length
