"""WAV and synthetic sources: exact frames, ALSA-identical sample layout, pacing, the end."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
import soundfile

from edge_recorder.audio.frames import AudioFormat, EndOfStream, Frames
from edge_recorder.capture.alsa import AlsaSource
from edge_recorder.capture.registry import open_source
from edge_recorder.capture.synthetic import SyntheticSource
from edge_recorder.capture.wav import WavSource
from edge_recorder.config.model import AudioConfig


def drain(source: WavSource | SyntheticSource) -> tuple[list[Frames], EndOfStream]:
    blocks: list[Frames] = []
    source.start()
    while True:
        item = source.read(timeout=5)
        if isinstance(item, EndOfStream):
            return blocks, item
        assert isinstance(item, Frames)
        blocks.append(item)


@pytest.mark.parametrize(
    ("subtype", "channels", "rate", "expected_format"),
    [
        ("PCM_16", 1, 16000, "S16_LE"),
        ("PCM_24", 2, 44100, "S24_LE"),
        ("PCM_32", 4, 48000, "S32_LE"),
        ("FLOAT", 1, 16000, "S32_LE"),
    ],
)
def test_wav_at_speed_zero_returns_every_frame_exactly(
    tmp_path: Path, subtype: str, channels: int, rate: int, expected_format: str
) -> None:
    frames = rate // 3 + 17  # not a whole number of periods
    rng = np.random.default_rng(1)
    signal = rng.uniform(-0.9, 0.9, size=(frames, channels))
    path = tmp_path / "in.wav"
    soundfile.write(path, signal, rate, subtype=subtype)
    source = WavSource(path, speed=0, period_ms=20)
    assert source.format == AudioFormat(rate, channels, expected_format)  # type: ignore[arg-type]
    blocks, end = drain(source)
    assert end.at_frame == frames
    assert sum(b.count for b in blocks) == frames
    assert [b.start_frame for b in blocks] == list(range(0, frames, rate // 50))
    got = np.concatenate([b.as_float32() for b in blocks])
    want = soundfile.read(path, dtype="float32", always_2d=True)[0]
    tolerance = 1 / 2**15 if expected_format == "S16_LE" else 1e-6
    np.testing.assert_allclose(got, want, atol=tolerance)
    assert isinstance(source.read(timeout=0), EndOfStream)  # the end is sticky


def test_wav_24_bit_samples_sit_in_the_low_bytes_like_alsa_s24_le(tmp_path: Path) -> None:
    path = tmp_path / "in.wav"
    values = np.array([[-(2**23)], [2**23 - 1], [1], [-1]], dtype=np.int32) << 8
    soundfile.write(path, values, 16000, subtype="PCM_24")
    blocks, _ = drain(WavSource(path, speed=0))
    raw = np.frombuffer(blocks[0].data, dtype="<i4")
    assert raw.tolist() == [-(2**23), 2**23 - 1, 1, -1]


def test_wav_paced_at_real_time_does_not_deliver_early(tmp_path: Path) -> None:
    path = tmp_path / "in.wav"
    soundfile.write(path, np.zeros(16000), 16000, subtype="PCM_16")
    source = WavSource(path, speed=1.0, period_ms=200)
    source.start()
    assert source.read(timeout=0) is None  # block 0 is due 200 ms after start
    began = time.monotonic()
    block = source.read(timeout=5)
    assert isinstance(block, Frames)
    assert block.count == 3200
    assert time.monotonic() - began > 0.1
    source.stop()
    assert isinstance(source.read(timeout=0), EndOfStream)


def test_wav_speed_scales_pacing(tmp_path: Path) -> None:
    path = tmp_path / "in.wav"
    soundfile.write(path, np.zeros(8000), 16000, subtype="PCM_16")  # 0.5 s
    source = WavSource(path, speed=5.0, period_ms=20)
    began = time.monotonic()
    blocks, _ = drain(source)
    assert len(blocks) == 25
    assert time.monotonic() - began >= 0.5 / 5.0 - 0.01


def test_wav_read_upto_hands_over_the_same_bytes_a_chunk_at_a_time(tmp_path: Path) -> None:
    path = tmp_path / "in.wav"
    rng = np.random.default_rng(3)
    soundfile.write(path, rng.uniform(-0.9, 0.9, (16000 + 17, 2)), 16000, subtype="PCM_24")
    periods, _ = drain(WavSource(path, speed=0, period_ms=20))
    chunked = WavSource(path, speed=0, period_ms=20)
    chunked.start()
    chunks: list[Frames] = []
    while isinstance(item := chunked.read_upto(1600, timeout=5), Frames):  # 5 periods each
        chunks.append(item)
    assert isinstance(item, EndOfStream) and item.at_frame == 16017
    assert [c.start_frame for c in chunks] == list(range(0, 16017, 1600))
    assert [c.count for c in chunks][-2:] == [1600, 17]
    assert b"".join(c.data for c in chunks) == b"".join(p.data for p in periods)


def test_wav_read_upto_waits_for_the_last_period_or_takes_what_is_due(tmp_path: Path) -> None:
    path = tmp_path / "in.wav"
    soundfile.write(path, np.zeros(16000), 16000, subtype="PCM_16")
    source = WavSource(path, speed=1.0, period_ms=20)
    source.start()
    began = time.monotonic()
    assert source.read_upto(1600, timeout=0) is None  # nothing is due yet
    chunk = source.read_upto(1600, timeout=5)
    assert isinstance(chunk, Frames) and chunk.count == 1600 and chunk.start_frame == 0
    assert time.monotonic() - began >= 0.1 - 0.005  # released when its 5th period is due
    source.stop()
    assert isinstance(source.read_upto(1600, timeout=0), EndOfStream)  # stopped: no hang
    slow = WavSource(path, speed=1.0, period_ms=100)
    slow.start()
    partial = slow.read_upto(8000, timeout=0.25)  # 5 periods wanted, 2 are due in time
    assert isinstance(partial, Frames) and partial.start_frame == 0
    assert 0 < partial.count < 8000 and partial.count % 1600 == 0
    slow.stop()


def test_missing_wav_fails_before_start(tmp_path: Path) -> None:
    with pytest.raises(soundfile.LibsndfileError):
        WavSource(tmp_path / "absent.wav")


@pytest.mark.parametrize("fmt", ["S16_LE", "S24_LE", "S32_LE"])
def test_synthetic_source_has_speech_where_it_says_and_quiet_elsewhere(fmt: str) -> None:
    audio_format = AudioFormat(16000, 2, fmt)  # type: ignore[arg-type]
    source = SyntheticSource(audio_format, speed=0, duration_s=6.0)
    blocks, end = drain(source)
    assert end.at_frame == 6 * 16000
    samples = np.concatenate([b.as_float32() for b in blocks])
    assert samples.shape == (96000, 2)
    speech = source.speech_segments(6.0)
    assert speech and speech[0][0] == pytest.approx(0.5)
    in_speech = np.zeros(96000, dtype=bool)
    for start, end_s in speech:
        in_speech[int(start * 16000) : int(end_s * 16000)] = True
    rms_speech = float(np.sqrt(np.mean(samples[in_speech] ** 2)))
    rms_quiet = float(np.sqrt(np.mean(samples[~in_speech] ** 2)))
    assert 20 * np.log10(rms_speech) > -30
    assert 20 * np.log10(rms_quiet) < -55


def test_synthetic_source_is_deterministic_whatever_the_block_size() -> None:
    fmt = AudioFormat(16000, 1, "S16_LE")
    a, _ = drain(SyntheticSource(fmt, speed=0, duration_s=2.0, period_ms=20))
    b, _ = drain(SyntheticSource(fmt, speed=0, duration_s=2.0, period_ms=30))
    mono_a = np.concatenate([x.as_float32() for x in a])[:, 0]
    mono_b = np.concatenate([x.as_float32() for x in b])[:, 0]
    # the noise differs in how it is drawn per block; the speech part must line up
    assert np.corrcoef(mono_a, mono_b)[0, 1] > 0.99


def test_open_source_picks_the_configured_source(tmp_path: Path) -> None:
    path = tmp_path / "in.wav"
    soundfile.write(path, np.zeros(160), 16000, subtype="PCM_16")
    assert isinstance(open_source(AudioConfig(source="wav", wav_path=path)), WavSource)
    synthetic = open_source(
        AudioConfig(source="synthetic", channels=4, rate=48000, format="S32_LE")
    )
    assert isinstance(synthetic, SyntheticSource)
    assert synthetic.format == AudioFormat(48000, 4, "S32_LE")
    alsa = open_source(
        AudioConfig(device="plughw:CARD=Array,DEV=0", period_ms=10, reopen_backoff_max_s=3.0)
    )
    assert isinstance(alsa, AlsaSource)
    assert alsa.period == 160
