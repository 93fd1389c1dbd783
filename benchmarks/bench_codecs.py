"""Encoder-only cost on 60 s of 16 kHz speech: our encoders (Opus at several complexities,
FLAC, PCM16) and the alternatives considered for Opus (libsndfile's Ogg/Opus via soundfile,
PyAV's bundled libopus + Ogg muxer when `av` happens to be installed; it is not a dependency).
Chunks of 100 ms, as the pipeline feeds them.
"""

from __future__ import annotations

import io
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from benchmarks import _audio
from edge_recorder.audio.codecs import FlacEncoder, OpusEncoder, Pcm16Encoder

CHUNK = 1600


def timed(encode: Callable[[np.ndarray], int], pcm: np.ndarray) -> tuple[float, int]:
    t = time.process_time()
    size = encode(pcm)
    return time.process_time() - t, size


def ours(factory: Callable[[], Any]) -> Callable[[np.ndarray], int]:
    def encode(pcm: np.ndarray) -> int:
        enc = factory()
        size = sum(len(enc.encode(pcm[i : i + CHUNK])) for i in range(0, pcm.size, CHUNK))
        return size + len(enc.finish())

    return encode


def soundfile_opus(pcm: np.ndarray) -> int:
    import soundfile

    buf = io.BytesIO()
    with soundfile.SoundFile(buf, "w", 16000, 1, format="OGG", subtype="OPUS") as f:
        for i in range(0, pcm.size, CHUNK):
            f.write(pcm[i : i + CHUNK])
    return len(buf.getvalue())


def pyav_opus(pcm: np.ndarray, complexity: int) -> int:
    import av  # optional: only measured when installed

    buf = io.BytesIO()
    container = av.open(buf, "w", format="ogg")
    options = {"compression_level": str(complexity), "application": "voip"}
    stream = container.add_stream("libopus", rate=16000, layout="mono", options=options)
    stream.bit_rate = 32000
    pts = 0
    for i in range(0, pcm.size, 320):
        frame = av.AudioFrame.from_ndarray(
            pcm[i : i + 320].reshape(1, -1), format="s16", layout="mono"
        )
        frame.sample_rate, frame.pts = 16000, pts
        pts += frame.samples
        for packet in stream.encode(frame):
            container.mux(packet)
    for packet in stream.encode(None):
        container.mux(packet)
    container.close()
    return len(buf.getvalue())


def run(quick: bool = False) -> dict[str, Any]:
    speech, _ = _audio.conversation(20 if quick else 60, seed=21)
    pcm = np.clip(speech * 32767, -32768, 32767).astype(np.int16)
    seconds = pcm.size / 16000
    candidates: list[tuple[str, Callable[[np.ndarray], int]]] = [
        ("pcm16", ours(Pcm16Encoder)),
        ("flac (soundfile, level 5)", ours(FlacEncoder)),
    ]
    for complexity in (0, 3, 5, 8, 10):
        candidates.append(
            (
                f"opus 32k c{complexity} (opuslib + our Ogg)",
                ours(lambda c=complexity: OpusEncoder(32000, c)),
            )
        )
    candidates.append(("opus (soundfile/libsndfile Ogg)", soundfile_opus))
    for complexity in (5, 10):
        candidates.append(
            (
                f"opus 32k c{complexity} (PyAV, if installed)",
                lambda p, c=complexity: pyav_opus(p, c),
            )
        )
    rows, detail = [], []
    for name, encode in candidates:
        try:
            cpu, size = timed(encode, pcm)
        except ImportError:
            rows.append([name, "not installed", "-"])
            continue
        entry = {
            "encoder": name,
            "cpu_s_per_audio_s": round(cpu / seconds, 5),
            "kbit_per_s": round(size * 8 / seconds / 1000, 1),
        }
        detail.append(entry)
        rows.append([name, entry["cpu_s_per_audio_s"], entry["kbit_per_s"]])
    return {
        "title": f"Encoder CPU-s per audio-s on {seconds:.0f} s of 16 kHz speech (100 ms chunks)",
        "columns": ["encoder", "CPU-s/audio-s", "kbit/s"],
        "rows": rows,
        "detail": detail,
    }
