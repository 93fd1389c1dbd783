"""Streaming encoders for the processed 16 kHz mono audio: PCM16, Ogg Opus, FLAC.

Each encoder takes int16 samples as they arrive and returns the bytes that are final so far;
`finish()` returns the rest. The concatenation of everything returned is one valid stream
(what the spool stores and the service receives), never a series of small files.

- PCM16: raw little-endian 16-bit mono, the service's `pcm` (the default).
- Ogg Opus: libopus through `opuslib` (a thin ctypes binding to Debian's libopus0) and the
  small RFC 7845 Ogg writer below. Measured here (benchmarks/bench_codecs.py) it costs ~30%
  less CPU than PyAV's bundled libopus + Ogg muxer at the same complexity and ~5x less than
  libsndfile's Opus, and adds kilobytes to an install instead of ~100 MB. Pages are flushed
  every `page_ms`, so bytes leave with each chunk rather than once per second.
- FLAC: libsndfile via soundfile writing into a forward-only sink. libFLAC seeks back at the
  end to patch STREAMINFO (total samples, MD5, frame sizes); bytes already handed out cannot
  change, so those fields stay "unknown" (0), which the FLAC format allows for streams.
"""

from __future__ import annotations

import struct
import zlib
from typing import Protocol

import numpy as np
import numpy.typing as npt

from edge_recorder.config.model import EncodingConfig

RATE = 16000
I16 = npt.NDArray[np.int16]
CONTENT_TYPES = {"pcm16": "audio/l16;rate=16000", "opus": "audio/ogg", "flac": "audio/flac"}


class Encoder(Protocol):
    codec: str

    def encode(self, pcm: I16) -> bytes: ...

    def finish(self) -> bytes: ...


def make_encoder(config: EncodingConfig) -> Encoder:
    if config.codec == "pcm16":
        return Pcm16Encoder()
    if config.codec == "opus":
        return OpusEncoder(config.opus_bitrate, config.opus_complexity, page_ms=config.chunk_ms)
    return FlacEncoder(config.flac_compression_level)


class Pcm16Encoder:
    codec = "pcm16"

    def encode(self, pcm: I16) -> bytes:
        return pcm.astype("<i2", copy=False).tobytes()

    def finish(self) -> bytes:
        return b""


# --- Ogg ------------------------------------------------------------------------------------

_REVERSE_BITS = bytes(int(f"{i:08b}"[::-1], 2) for i in range(256))


def ogg_crc(data: bytes) -> int:
    """Ogg's CRC-32 (poly 0x04C11DB7, MSB first, init 0, no final xor) via zlib's C code.

    zlib computes the bit-reflected CRC of the same polynomial, so reflecting each input byte,
    starting from a zero register and reflecting the result gives Ogg's value at C speed.
    """
    reflected = ~zlib.crc32(data.translate(_REVERSE_BITS), 0xFFFFFFFF) & 0xFFFFFFFF
    return int(f"{reflected:032b}"[::-1], 2)


class OggStream:
    """Packs packets into Ogg pages (one logical stream) and returns the page bytes."""

    def __init__(self, serial: int) -> None:
        self.serial = serial
        self.sequence = 0
        self._packets: list[bytes] = []
        self._lacing = 0
        self._granule = 0

    @property
    def pending_packets(self) -> int:
        return len(self._packets)

    def add(self, packet: bytes, granule: int) -> bytes:
        """Queue a packet; returns a full page first if this packet would not fit."""
        out = b""
        if self._lacing + len(packet) // 255 + 1 > 255:
            out = self.page(self._granule)
        self._packets.append(packet)
        self._lacing += len(packet) // 255 + 1
        self._granule = granule
        return out

    def page(self, granule: int, *, bos: bool = False, eos: bool = False) -> bytes:
        """Emit the queued packets as one page ending at `granule`."""
        lacing = bytearray()
        for packet in self._packets:
            lacing += b"\xff" * (len(packet) // 255) + bytes([len(packet) % 255])
        flags = (0x02 if bos else 0) | (0x04 if eos else 0)
        header = struct.pack(
            "<4sBBqIIIB", b"OggS", 0, flags, granule, self.serial, self.sequence, 0, len(lacing)
        )
        page = bytearray(header + lacing + b"".join(self._packets))
        struct.pack_into("<I", page, 22, ogg_crc(bytes(page)))
        self.sequence += 1
        self._packets, self._lacing = [], 0
        return bytes(page)


class OpusEncoder:
    """Ogg Opus, mono 16 kHz, 20 ms frames; VBR voice at `bitrate` bit/s."""

    codec = "opus"
    FRAME = 320  # 20 ms at 16 kHz
    GRANULE_PER_FRAME = 960  # Ogg Opus granules count 48 kHz samples

    def __init__(self, bitrate: int = 32000, complexity: int = 5, page_ms: int = 100) -> None:
        import opuslib  # type: ignore[import-untyped]
        import opuslib.api.ctl  # type: ignore[import-untyped]
        import opuslib.api.encoder  # type: ignore[import-untyped]

        self._enc = opuslib.Encoder(RATE, 1, opuslib.APPLICATION_VOIP)
        self._enc.bitrate = bitrate
        self._enc.complexity = complexity
        lookahead = opuslib.api.encoder.encoder_ctl(
            self._enc.encoder_state, opuslib.api.ctl.get_lookahead
        )
        self.pre_skip = int(lookahead) * (48000 // RATE)
        self.page_packets = max(1, page_ms // 20)
        self._ogg = OggStream(serial=int.from_bytes(np.random.default_rng().bytes(4), "little"))
        self._pending = np.zeros(0, np.int16)
        self._samples_in = 0
        self._granule = 0
        self._started = False

    def _headers(self) -> bytes:
        head = struct.pack("<8sBBHIhB", b"OpusHead", 1, 1, self.pre_skip, RATE, 0, 0)
        vendor = b"edge-recorder (libopus)"
        tags = b"OpusTags" + struct.pack("<I", len(vendor)) + vendor + struct.pack("<I", 0)
        self._ogg.add(head, 0)
        out = self._ogg.page(0, bos=True)
        self._ogg.add(tags, 0)
        return out + self._ogg.page(0)

    def encode(self, pcm: I16) -> bytes:
        out = b""
        if not self._started:
            out, self._started = self._headers(), True
        self._samples_in += pcm.size
        buf = np.concatenate((self._pending, pcm)) if self._pending.size else pcm
        whole = buf.size // self.FRAME * self.FRAME
        for start in range(0, whole, self.FRAME):
            out += self._packet(buf[start : start + self.FRAME])
        self._pending = buf[whole:].astype(np.int16, copy=True)
        return out

    def _packet(self, frame: I16) -> bytes:
        packet = self._enc.encode(frame.astype("<i2", copy=False).tobytes(), self.FRAME)
        self._granule += self.GRANULE_PER_FRAME
        out: bytes = self._ogg.add(packet, self._granule)
        if self._ogg.pending_packets >= self.page_packets:
            out += self._ogg.page(self._granule)
        return out

    def finish(self) -> bytes:
        """Pad the last frame, encode past the lookahead, and end-trim via the granule.

        A recording shorter than one 20 ms frame has all its audio on the EOS page, and ffmpeg
        (unlike libopusfile) then ignores the end trim: it decodes up to 20 ms of padding.
        """
        out = b"" if self._started else self._headers()
        self._started = True
        if self._ogg.pending_packets:  # ffmpeg end-trims only relative to an earlier page
            out += self._ogg.page(self._granule)
        end = self.pre_skip + self._samples_in * (48000 // RATE)
        tail = np.zeros(self.FRAME, np.int16)
        tail[: self._pending.size] = self._pending
        self._pending = np.zeros(0, np.int16)
        out += self._packet(tail)
        while self._granule < end:
            out += self._packet(np.zeros(self.FRAME, np.int16))
        return out + self._ogg.page(end, eos=True)


# --- FLAC -----------------------------------------------------------------------------------


class _ForwardSink:
    """A file object for libsndfile that hands bytes out as soon as they are written.

    Writes behind what was already handed out (libFLAC's final STREAMINFO patch) are
    ignored and counted; writes into the not-yet-handed-out tail are applied.
    """

    def __init__(self) -> None:
        self._pos = 0
        self._emitted = 0  # bytes already returned to the caller
        self._buffer = bytearray()  # bytes from _emitted onwards
        self.ignored_patches = 0

    def write(self, data: bytes) -> int:
        data = bytes(data)
        if self._pos < self._emitted:
            self.ignored_patches += 1
        else:
            offset = self._pos - self._emitted
            self._buffer[offset : offset + len(data)] = data
        self._pos += len(data)
        return len(data)

    def seek(self, offset: int, whence: int = 0) -> int:
        end = self._emitted + len(self._buffer)
        base = {0: 0, 1: self._pos, 2: end}[whence]
        self._pos = base + offset
        return self._pos

    def tell(self) -> int:
        return self._pos

    def read(self, size: int = -1) -> bytes:
        return b""  # never asked for when writing; a forward-only stream has nothing to read

    def take(self) -> bytes:
        out = bytes(self._buffer)
        self._emitted += len(out)
        self._buffer.clear()
        return out


class FlacEncoder:
    """FLAC 16-bit mono 16 kHz via libsndfile, streamed (4096-sample frames)."""

    codec = "flac"

    def __init__(self, compression_level: int = 5) -> None:
        import soundfile

        self._sink = _ForwardSink()
        self._file = soundfile.SoundFile(
            self._sink,
            "w",
            samplerate=RATE,
            channels=1,
            format="FLAC",
            subtype="PCM_16",
            compression_level=compression_level / 8,
        )

    def encode(self, pcm: I16) -> bytes:
        if pcm.size:
            self._file.write(pcm)
        return self._sink.take()

    def finish(self) -> bytes:
        if not self._file.closed:
            self._file.close()
        return self._sink.take()
