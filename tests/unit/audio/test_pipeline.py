"""The composed pipeline: period-size invariance, encoders end to end, gaps, trimming."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile
import soxr

from edge_recorder.audio.frames import AudioFormat, Frames
from edge_recorder.audio.pipeline import Pipeline, summary
from edge_recorder.config.model import AudioConfig, EncodingConfig, VadConfig

FMT = AudioFormat(48000, 4, "S32_LE")


@pytest.fixture(scope="module")
def talk(tmp_path_factory: pytest.TempPathFactory) -> np.ndarray:
    """Speech, 4 s of low noise, speech again; 16 kHz float32."""
    path = tmp_path_factory.mktemp("talk") / "t.wav"
    subprocess.run(
        [
            "espeak-ng",
            "-v",
            "en-gb",
            "-w",
            str(path),
            "Good morning. How have you been sleeping since the last visit?",
        ],
        check=True,
        capture_output=True,
    )
    audio, rate = soundfile.read(path, dtype="float32")
    voice = soxr.resample(audio, rate, 16000).astype(np.float32) * 0.5
    rng = np.random.default_rng(0)
    gap = (rng.standard_normal(4 * 16000) * 1e-4).astype(np.float32)
    return np.concatenate([gap[:8000], voice, gap, voice, gap[:8000]])


def array_bytes(mono16k: np.ndarray) -> bytes:
    up = soxr.resample(mono16k, 16000, 48000)
    rng = np.random.default_rng(1)
    chans = np.stack([up + rng.standard_normal(up.size) * 1e-4 for _ in range(4)], axis=1)
    return np.clip(chans * 2**31, -(2**31), 2**31 - 1).astype("<i4").tobytes()


def make(codec: str = "pcm16", **vad: object) -> Pipeline:
    audio = AudioConfig(source="synthetic", rate=48000, channels=4, format="S32_LE")
    return Pipeline(FMT, audio, VadConfig(**vad), EncodingConfig(codec=codec))  # type: ignore[arg-type]


def feed(pipeline: Pipeline, data: bytes, period: int) -> tuple[bytes, np.ndarray]:
    encoded, pcm, segments = [], [], []
    total = len(data) // FMT.frame_bytes
    for start in range(0, total, period):
        chunk = data[start * FMT.frame_bytes : min(start + period, total) * FMT.frame_bytes]
        result = pipeline.process(Frames(chunk, FMT, start))
        encoded.append(result.encoded)
        pcm.append(result.pcm)
        segments += result.vad.segments if result.vad else []
    final = pipeline.finish()
    assert final.vad is not None and not final.vad.in_speech
    # every segment is reported exactly once, in the call that closed it
    assert [*segments, *final.vad.segments] == pipeline.stats.vad.segments
    return b"".join([*encoded, final.encoded]), np.concatenate([*pcm, final.pcm])


def test_output_and_speech_do_not_depend_on_the_period_size(talk: np.ndarray) -> None:
    data = array_bytes(talk)
    a, b = make(), make()
    bytes_a, pcm_a = feed(a, data, 960)
    bytes_b, _pcm_b = feed(b, data, 317)
    assert bytes_a == bytes_b == pcm_a.tobytes()
    assert len(bytes_a) == 2 * round(len(data) / FMT.frame_bytes / 3)
    assert a.stats.vad.segments == b.stats.vad.segments
    starts = [seg[0] for seg in a.stats.vad.segments[1:]]
    ends = [seg[1] for seg in a.stats.vad.segments[:-1]]
    assert max(s - e for s, e in zip(starts, ends, strict=True)) > 3.0  # the 4 s pause
    report = summary(a)
    assert set(report) == {
        "duration_s",
        "speech_segments",
        "speech_ratio",
        "rms_dbfs",
        "peak_dbfs",
        "clipped_samples",
        "digital_silence_s",
    }
    assert 0.2 < float(report["speech_ratio"]) < 0.8  # type: ignore[arg-type]
    assert all(v >= 0 for v in a.stats.cpu_s.values())


def test_an_untimed_pipeline_makes_the_same_bytes_and_reads_no_clock(talk: np.ndarray) -> None:
    """The capture thread skips the per-stage CPU clock (a system call per stage per chunk):
    only the figures differ, never the audio."""
    data = array_bytes(talk[:32000])
    audio = AudioConfig(source="synthetic", rate=48000, channels=4, format="S32_LE")
    untimed = Pipeline(FMT, audio, VadConfig(), EncodingConfig(codec="pcm16"), timed=False)
    timed = make()
    assert feed(untimed, data, 960)[0] == feed(timed, data, 5760)[0]
    assert set(untimed.stats.cpu_s.values()) == {0.0}
    assert sum(timed.stats.cpu_s.values()) > 0


@pytest.mark.parametrize("codec,suffix", [("opus", "opus"), ("flac", "flac")])
def test_encoded_recording_is_one_stream_ffmpeg_decodes(
    codec: str, suffix: str, talk: np.ndarray, tmp_path: Path
) -> None:
    data = array_bytes(talk[:40000])
    reference, pcm = feed(make(), data, 960)
    encoded, _ = feed(make(codec), data, 960)
    path = tmp_path / f"rec.{suffix}"
    path.write_bytes(encoded)
    out = subprocess.run(
        [
            "ffmpeg",
            "-nostdin",
            "-v",
            "warning",
            "-i",
            str(path),
            "-f",
            "s16le",
            "-ar",
            "16000",
            "-ac",
            "1",
            "-",
        ],
        capture_output=True,
        check=True,
    )
    assert out.stderr == b""
    decoded = np.frombuffer(out.stdout, "<i2")
    assert decoded.size == pcm.size
    if codec == "flac":
        assert decoded.tobytes() == reference


def test_gaps_are_filled_and_the_timeline_is_trusted() -> None:
    pipeline = make()
    block = bytes(960 * FMT.frame_bytes)
    pipeline.process(Frames(block, FMT, 0))
    # the source says nothing was lost, but its timeline skips 4800 frames: trust the timeline
    pipeline.process(Frames(block, FMT, 960 + 4800, lost_before=0))
    pipeline.process(Frames(block, FMT, 2 * 960 + 4800 + 960, lost_before=960))
    pipeline.finish()
    assert pipeline.stats.meters.input_frames == 3 * 960 + 4800 + 960
    assert pipeline.stats.output_samples == (3 * 960 + 4800 + 960) // 3
    assert pipeline.stats.meters.gap_frames == 4800 + 960
    assert pipeline.stats.timeline_gaps == 2
    with pytest.raises(RuntimeError):
        pipeline.finish()


def test_overlapping_frames_are_refused() -> None:
    pipeline = make()
    block = bytes(960 * FMT.frame_bytes)
    pipeline.process(Frames(block, FMT, 0))
    with pytest.raises(ValueError, match="overlap"):
        pipeline.process(Frames(block, FMT, 500))


def test_trimming_is_off_by_default_and_counted_when_on(talk: np.ndarray) -> None:
    data = array_bytes(talk)
    kept, _ = feed(make(), data, 960)
    assert make().stats.dropped_samples == 0
    trimming = make(trim_silence_over_s=1.0)
    trimmed, pcm = feed(trimming, data, 960)
    dropped = trimming.stats.dropped_samples
    assert 2.0 * 16000 < dropped < 3.5 * 16000  # most of the 4 s pause, none of the speech
    assert len(trimmed) == len(kept) - 2 * dropped == pcm.nbytes
    assert trimming.stats.vad.dropped_s == pytest.approx(dropped / 16000, abs=0.04)
