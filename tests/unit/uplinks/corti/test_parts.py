"""WAV wrapping and the split plan (pure)."""

from __future__ import annotations

import io
import wave

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge_recorder.uplinks.corti.parts import (
    WAV_HEADER_BYTES,
    UploadPlan,
    pcm_part_bytes,
    plan_pcm,
    wav_audio,
    wav_format,
    wav_header,
)


def test_wav_header_is_read_by_the_standard_library() -> None:
    data = bytes(range(256)) * 10
    blob = wav_header(len(data), 16000, 1) + data
    assert len(blob) == WAV_HEADER_BYTES + len(data)
    with wave.open(io.BytesIO(blob)) as wav:
        assert (wav.getframerate(), wav.getnchannels(), wav.getsampwidth()) == (16000, 1, 2)
        assert wav.getnframes() == len(data) // 2
        assert wav.readframes(wav.getnframes()) == data
    assert wav_audio(blob) == data
    assert wav_format(blob) == (16000, 1, 16)


def test_wav_audio_refuses_sizes_that_disagree() -> None:
    blob = wav_header(100, 16000, 1) + bytes(98)
    with pytest.raises(ValueError, match="RIFF size"):
        wav_audio(blob)
    with pytest.raises(ValueError, match="RIFF/WAVE"):
        wav_audio(b"fLaC" + bytes(40))


def test_part_size_respects_both_limits_and_whole_frames() -> None:
    # 16 kHz pcm16: 150 MB is ~78 min, so the size binds by default (minus the header, even)
    assert pcm_part_bytes(150_000_000, 7200, 16000, 1) == 149_999_956
    assert pcm_part_bytes(150_000_000, 600, 16000, 1) == 19_200_000  # time binds
    assert pcm_part_bytes(20_045, 7200, 16000, 1) == 20_000  # size binds, even bytes
    assert pcm_part_bytes(20_045, 7200, 16000, 2) == 20_000  # 4-byte frames
    assert pcm_part_bytes(10**9, 0.5, 16000, 1) == 16000
    with pytest.raises(ValueError):
        pcm_part_bytes(44, 7200, 16000, 1)


@settings(max_examples=60, deadline=None)
@given(
    length=st.integers(0, 100_000).map(lambda n: n * 2),
    max_bytes=st.integers(1000, 70_000),
    max_s=st.floats(0.05, 10),
)
def test_parts_cover_the_recording_exactly_within_limits(
    length: int, max_bytes: int, max_s: float
) -> None:
    plan = plan_pcm(length, max_bytes, max_s, 16000, 1)
    parts = plan.parts()
    assert len(parts) == plan.count
    position = 0
    for part in parts:
        assert part.start == position and part.size > 0
        assert part.size % 2 == 0
        assert part.size + WAV_HEADER_BYTES <= max_bytes
        assert part.size / 32000 <= max_s + 1e-9
        position = part.end
    assert position == length
    assert UploadPlan.decode(plan.encode()) == plan


def test_plan_encoding_round_trips_flac_cuts() -> None:
    plan = UploadPlan(1000, 0, (400, 800, 1000), 86)
    assert UploadPlan.decode(plan.encode()) == plan
    assert [(p.start, p.end) for p in plan.parts()] == [(0, 400), (400, 800), (800, 1000)]
    assert [plan.prefix_bytes(p) for p in plan.parts()] == [0, 86, 86]
    with pytest.raises(ValueError):
        UploadPlan.decode("1000:0:86:400,800")  # cuts must end at the length
