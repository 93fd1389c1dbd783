"""The front ends being compared, all behind one small interface, run as the pipeline would.

A candidate takes (frames, M) float32 blocks and returns `frames` mono samples, possibly
`delay_samples` late; that is the contract of `edge_recorder.audio.array.ArrayProcessor`, so
today's average, a single channel, WebRTC noise suppression and every beamformer are measured
the same way: fed in 120 ms chunks (the pipeline's `encoding.chunk_ms`), CPU counted as process
time inside `process` only.
"""

from __future__ import annotations

import importlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]
RATE = 16000
CHUNK = 1920  # 120 ms at 16 kHz, the pipeline's chunk
_NS_FRAME = 160  # WebRTC's audio processing works on 10 ms frames
NS_LEVEL = 2  # noise suppression 0-4 and auto gain target (dBFS, 0-31) as the Pi voice
AUTO_GAIN_DBFS = 5  # satellites run it (wyoming-satellite's documented example)
ORACLE = "best single channel (oracle)"
AVERAGE = "channel average (today)"


class Candidate(Protocol):
    """A stateful front end; a fresh one per scene."""

    delay_samples: int

    def process(self, block: F32) -> F32: ...


class ChannelAverage:
    """Today's mix: equal weights over the mic channels (dsp.mix_weights with none set)."""

    delay_samples = 0

    def process(self, block: F32) -> F32:
        return np.asarray(np.mean(block, axis=1, dtype=np.float32), np.float32)


class SingleChannel:
    """One mic as it is: what a one-mic device would get (the oracle picks the best one)."""

    delay_samples = 0

    def __init__(self, index: int) -> None:
        self.index = index

    def process(self, block: F32) -> F32:
        return np.ascontiguousarray(block[:, self.index])


class WebRtcNs:
    """`inner`, then WebRTC noise suppression + automatic gain (webrtc_noise_gain, 10 ms int16
    frames). Chunks are whole 10 ms frames, so it adds no delay of its own beyond WebRTC's."""

    def __init__(self, inner: Candidate) -> None:
        module = importlib.import_module("webrtc_noise_gain")
        self.inner = inner
        self.delay_samples = inner.delay_samples
        self._processor: Any = module.AudioProcessor(AUTO_GAIN_DBFS, NS_LEVEL)

    def process(self, block: F32) -> F32:
        mono = self.inner.process(block)
        if mono.size % _NS_FRAME:
            raise ValueError(f"blocks must be whole 10 ms frames ({_NS_FRAME} samples)")
        pcm = (np.clip(mono, -1.0, 32767 / 32768) * 32768).astype("<i2").tobytes()
        step = 2 * _NS_FRAME
        out = b"".join(
            self._processor.Process10ms(pcm[i : i + step]).audio for i in range(0, len(pcm), step)
        )
        return (np.frombuffer(out, "<i2").astype(np.float32) / 32768).astype(np.float32)


@dataclass(frozen=True)
class Factory:
    """A named way to build a fresh candidate for a scene's mic positions (board frame, m)."""

    name: str
    build: Callable[[F64], Candidate]
    array_kind: str | None = None  # set for beamformers from edge_recorder.audio.array


def array_module() -> tuple[Any | None, str]:
    """`edge_recorder.audio.array` if it imports and has the contract, else None and why."""
    try:
        module = importlib.import_module("edge_recorder.audio.array")
    except Exception as exc:  # a half-written package must not stop the baselines
        return None, f"edge_recorder.audio.array not importable ({type(exc).__name__}: {exc})"
    missing = [name for name in ("KINDS", "make_array_processor") if not hasattr(module, name)]
    if missing:
        return None, f"edge_recorder.audio.array lacks {', '.join(missing)}"
    return module, f"edge_recorder.audio.array kinds: {', '.join(module.KINDS)}"


# Kinds that need the room measured first: the main set's scenes have no calibration, so they
# are scored by `calibration_eval` (bench_farfield --calibration-honest) instead.
NEEDS_ROOM_CALIBRATION = ("calibrated",)


def factories() -> tuple[list[Factory], str]:
    """Baselines, then every array kind alone and with WebRTC NS (when the package is there),
    and a note saying which it was."""
    out = [
        Factory(AVERAGE, lambda _: ChannelAverage()),
        Factory("WebRTC NS+AGC on average", lambda _: WebRtcNs(ChannelAverage())),
    ]
    module, note = array_module()
    if module is not None:
        for kind in module.KINDS:
            if kind in NEEDS_ROOM_CALIBRATION:
                continue

            def make(positions: F64, kind: str = kind) -> Candidate:
                processor: Candidate = module.make_array_processor(kind, positions, RATE)
                return processor

            def make_ns(positions: F64, make: Callable[[F64], Candidate] = make) -> Candidate:
                return WebRtcNs(make(positions))

            out.append(Factory(f"array:{kind}", make, array_kind=kind))
            out.append(Factory(f"array:{kind} + WebRTC NS", make_ns, array_kind=kind))
    return out, note


def run(candidate: Candidate, capture: F32, chunk: int = CHUNK) -> tuple[F32, float]:
    """The candidate's whole output for `capture` (N, M), fed `chunk` frames at a time, and
    the process CPU seconds spent in `process`."""
    outputs: list[F32] = []
    cpu = 0.0
    for start in range(0, capture.shape[0], chunk):
        block = np.ascontiguousarray(capture[start : start + chunk])
        t = time.process_time()
        out = candidate.process(block)
        cpu += time.process_time() - t
        if out.shape != (block.shape[0],):
            raise ValueError(f"{type(candidate).__name__} returned {out.shape} for {block.shape}")
        outputs.append(np.asarray(out, np.float32))
    return np.concatenate(outputs), cpu
