"""Encoders: streamed chunks form one stream that the real ffmpeg decodes; PCM/FLAC exact."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile
import soxr
from hypothesis import given, settings
from hypothesis import strategies as st

from edge_recorder.audio.codecs import (
    FlacEncoder,
    OpusEncoder,
    Pcm16Encoder,
    make_encoder,
    ogg_crc,
)
from edge_recorder.config.model import EncodingConfig


def test_signal(seconds: float = 2.0, seed: int = 0) -> np.ndarray:
    """Voice-like: harmonics with a syllable envelope, plus a little noise; int16."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(16000 * seconds)) / 16000
    voice = sum(np.sin(2 * np.pi * 140 * k * t) / k for k in range(1, 12))
    envelope = 0.5 + 0.5 * np.sin(2 * np.pi * 3 * t)
    x = 0.2 * voice * envelope + 0.01 * rng.standard_normal(t.size)
    return np.clip(x * 32767, -32768, 32767).astype(np.int16)


test_signal.__test__ = False  # type: ignore[attr-defined]


def stream(encoder: object, pcm: np.ndarray, sizes: list[int]) -> list[bytes]:
    chunks, pos = [], 0
    for size in [*sizes, pcm.size]:
        if pos >= pcm.size:
            break
        chunks.append(encoder.encode(pcm[pos : pos + size]))  # type: ignore[attr-defined]
        pos += size
    chunks.append(encoder.finish())  # type: ignore[attr-defined]
    return chunks


def ffmpeg_decode(data: bytes, tmp_path: Path, suffix: str) -> np.ndarray:
    path = tmp_path / f"stream.{suffix}"
    path.write_bytes(data)
    result = subprocess.run(
        [
            "ffmpeg",
            "-nostdin",
            "-v",
            "warning",
            "-i",
            str(path),
            "-f",
            "s16le",
            "-ac",
            "1",
            "-ar",
            "16000",
            "-",
        ],
        capture_output=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr.decode()
    assert result.stderr == b"", result.stderr.decode()  # no CRC or framing complaints
    return np.frombuffer(result.stdout, "<i2")


def test_pcm16_is_raw_little_endian() -> None:
    pcm = np.array([1, -2, 32767, -32768], np.int16)
    assert b"".join(stream(Pcm16Encoder(), pcm, [1, 2])) == bytes.fromhex("0100feff ff7f0080")


@settings(max_examples=6, deadline=None)
@given(sizes=st.lists(st.integers(1, 5000), min_size=1, max_size=20))
def test_flac_chunks_decode_bit_exactly_with_ffmpeg(
    sizes: list[int], tmp_path_factory: pytest.TempPathFactory
) -> None:
    pcm = test_signal(1.5)
    chunks = stream(FlacEncoder(), pcm, sizes)
    data = b"".join(chunks)
    assert data.startswith(b"fLaC")
    decoded = ffmpeg_decode(data, tmp_path_factory.mktemp("flac"), "flac")
    assert np.array_equal(decoded, pcm)


def test_flac_emits_bytes_while_recording() -> None:
    encoder = FlacEncoder()
    pcm = test_signal(3.0)
    chunks = stream(encoder, pcm, [1600] * 30)
    assert sum(1 for c in chunks[:-1] if c) >= 8  # a frame every 4096 samples, not at close
    assert len(b"".join(chunks)) < pcm.nbytes * 0.8


@pytest.fixture(scope="module")
def speech(tmp_path_factory: pytest.TempPathFactory) -> np.ndarray:
    """espeak-ng speech at 16 kHz int16 (real speech: a periodic test tone would make the
    alignment check ambiguous)."""
    path = tmp_path_factory.mktemp("speech") / "s.wav"
    subprocess.run(
        [
            "espeak-ng",
            "-v",
            "en-us",
            "-w",
            str(path),
            "The patient reports three days of chest pain, worse on exertion.",
        ],
        check=True,
        capture_output=True,
    )
    audio, rate = soundfile.read(path, dtype="float32")
    audio = soxr.resample(audio, rate, 16000)
    return np.clip(audio * 16000, -32768, 32767).astype(np.int16)


def test_opus_stream_decodes_with_exact_length_and_aligned(
    tmp_path: Path, speech: np.ndarray
) -> None:
    pcm = speech[:32000]
    chunks = stream(OpusEncoder(bitrate=32000, complexity=5, page_ms=100), pcm, [320] * 200)
    data = b"".join(chunks)
    assert data.startswith(b"OggS")
    decoded = ffmpeg_decode(data, tmp_path, "opus")
    assert decoded.size == pcm.size  # pre-skip and end trimming honoured
    a, b = decoded[1000:-1000].astype(float), pcm.astype(float)
    lags = range(-40, 41)
    corr = [np.corrcoef(a, b[1000 + lag : b.size - 1000 + lag])[0, 1] for lag in lags]
    assert lags[int(np.argmax(corr))] == 0  # aligned to the sample: pre-skip is right
    assert max(corr) > 0.9
    kbps = len(data) * 8 / 2.0 / 1000
    assert 20 < kbps < 45
    audio_chunks = [c for c in chunks[1:-1] if c]
    assert len(audio_chunks) >= 15  # one page per 100 ms as audio arrives


def test_opus_odd_sizes_and_tiny_recordings(tmp_path: Path) -> None:
    for n, sizes in ((1234, [7, 100, 333]), (333, []), (16000, [1] * 50)):
        pcm = test_signal(1.0)[:n]
        data = b"".join(stream(OpusEncoder(), pcm, sizes))
        assert ffmpeg_decode(data, tmp_path, "opus").size == n


def test_ogg_crc_matches_the_reference_vector() -> None:
    # CRC-32/MPEG-2 without final inversion and zero init is Ogg's; "123456789" -> 0x89A1897F
    assert ogg_crc(b"123456789") == 0x89A1897F
    assert ogg_crc(b"") == 0


def test_make_encoder_follows_config() -> None:
    assert make_encoder(EncodingConfig()).codec == "pcm16"
    assert make_encoder(EncodingConfig(codec="opus")).codec == "opus"
    assert make_encoder(EncodingConfig(codec="flac")).codec == "flac"
