"""Pipeline cost: CPU seconds per audio second for 4-channel 48 kHz S32_LE → 16 kHz mono,
per stage and in total, with the default VAD and each encoder; and ffmpeg doing the same
mix + high-pass + resample + encode on the same input in the same run.

Input is 30 s of espeak-ng speech (with per-channel delay and noise, like an array) looped
to ten minutes, fed in 20 ms periods exactly as ALSA hands them over.
"""

from __future__ import annotations

import resource
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks import _audio
from edge_recorder.audio.frames import AudioFormat, Frames
from edge_recorder.audio.pipeline import Pipeline
from edge_recorder.config.model import AudioConfig, EncodingConfig, VadConfig

FMT = AudioFormat(48000, 4, "S32_LE")
PERIOD = 960  # 20 ms
BASE_S = 30
CODECS = ("pcm16", "opus", "flac")
FFMPEG_CODEC = {
    "pcm16": ["-c:a", "pcm_s16le", "-f", "s16le"],
    "opus": [
        "-c:a",
        "libopus",
        "-b:a",
        "32k",
        "-application",
        "voip",
        "-compression_level",
        "5",
        "-f",
        "ogg",
    ],
    "flac": ["-c:a", "flac", "-compression_level", "5", "-f", "flac"],
}


def array_input(seconds: int) -> bytes:
    """`seconds` of 4-channel 48 kHz S32_LE: speech with small inter-mic delays + noise."""
    speech, _ = _audio.conversation(seconds, seed=3)
    up = np.interp(np.arange(seconds * 48000) / 3, np.arange(speech.size), speech)
    rng = np.random.default_rng(5)
    channels = [np.roll(up, d) + rng.standard_normal(up.size) * 0.003 for d in (0, 3, 6, 9)]
    pcm = np.stack(channels, axis=1) * 0.5 * 2**31
    return np.clip(pcm, -(2**31), 2**31 - 1).astype("<i4").tobytes()


def run_pipeline(base: bytes, minutes: float, codec: str) -> dict[str, Any]:
    audio = AudioConfig(source="synthetic", rate=48000, channels=4, format="S32_LE")
    pipeline = Pipeline(FMT, audio, VadConfig(), EncodingConfig(codec=codec))
    total_frames = int(minutes * 60 * FMT.rate)
    base_frames = len(base) // FMT.frame_bytes
    step = PERIOD * FMT.frame_bytes
    encoded = 0
    t0 = time.process_time()
    for start in range(0, total_frames, PERIOD):
        offset = (start % base_frames) * FMT.frame_bytes
        encoded += len(pipeline.process(Frames(base[offset : offset + step], FMT, start)).encoded)
    encoded += len(pipeline.finish().encoded)
    total = time.process_time() - t0
    seconds = total_frames / FMT.rate
    stages = {k: round(v / seconds, 5) for k, v in pipeline.stats.cpu_s.items()}
    return {
        "codec": codec,
        "audio_s": seconds,
        "stages_cpu_per_audio_s": stages,
        "total_cpu_per_audio_s": round(total / seconds, 5),
        "kbit_per_s": round(encoded * 8 / seconds / 1000, 1),
    }


def run_ffmpeg(base_path: Path, minutes: float, codec: str) -> float:
    """CPU-s per audio-s of ffmpeg (user+sys of the child) for the same job, without VAD."""
    loops = int(np.ceil(minutes * 60 / BASE_S)) - 1
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run(
        [
            "ffmpeg",
            "-nostdin",
            "-v",
            "error",
            "-threads",
            "1",
            "-stream_loop",
            str(loops),
            "-f",
            "s32le",
            "-ar",
            "48000",
            "-ac",
            "4",
            "-i",
            str(base_path),
            "-t",
            str(minutes * 60),
            "-af",
            "pan=mono|c0=0.25*c0+0.25*c1+0.25*c2+0.25*c3,highpass=f=20:poles=1,"
            "aresample=16000:resampler=soxr",
            *FFMPEG_CODEC[codec],
            "-y",
            "/dev/null",
        ],
        check=True,
    )
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return cpu / (minutes * 60)


def run(quick: bool = False) -> dict[str, Any]:
    minutes = 1.0 if quick else 10.0
    base = array_input(BASE_S)
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        base_path = Path(tmp) / "base.raw"
        base_path.write_bytes(base)
        for codec in CODECS:
            ours = run_pipeline(base, minutes, codec)
            ours["ffmpeg_cpu_per_audio_s"] = round(run_ffmpeg(base_path, minutes, codec), 5)
            no_vad = (
                ours["stages_cpu_per_audio_s"]["dsp"] + ours["stages_cpu_per_audio_s"]["encode"]
            )
            ours["ratio_vs_ffmpeg_without_vad"] = round(no_vad / ours["ffmpeg_cpu_per_audio_s"], 2)
            ours["ratio_vs_ffmpeg_total"] = round(
                ours["total_cpu_per_audio_s"] / ours["ffmpeg_cpu_per_audio_s"], 2
            )
            results.append(ours)
    rows = [
        [
            r["codec"],
            r["stages_cpu_per_audio_s"]["dsp"],
            r["stages_cpu_per_audio_s"]["vad"],
            r["stages_cpu_per_audio_s"]["encode"],
            r["total_cpu_per_audio_s"],
            r["ffmpeg_cpu_per_audio_s"],
            r["ratio_vs_ffmpeg_without_vad"],
            r["ratio_vs_ffmpeg_total"],
            r["kbit_per_s"],
        ]
        for r in results
    ]
    by_codec = {r["codec"]: r["total_cpu_per_audio_s"] for r in results}
    return {
        "title": f"Pipeline CPU-s per audio-s, {minutes:g} min of 4 ch 48 kHz S32_LE → 16 kHz "
        f"mono, VAD {VadConfig().engine}",
        "columns": [
            "encoder",
            "dsp",
            "vad",
            "encode",
            "total",
            "ffmpeg (no VAD)",
            "ours w/o VAD ÷ ffmpeg",
            "ours total ÷ ffmpeg",
            "kbit/s",
        ],
        "rows": rows,
        "detail": results,
        "goals": [
            {
                "goal": "PCM16 + default VAD <= 0.01 CPU-s/audio-s",
                "value": by_codec["pcm16"],
                "met": by_codec["pcm16"] <= 0.01,
            },
            {
                "goal": "Opus + default VAD <= 0.02 CPU-s/audio-s",
                "value": by_codec["opus"],
                "met": by_codec["opus"] <= 0.02,
            },
        ],
    }
