"""Voice activity: one engine interface, and a streaming tracker that turns probabilities
into segments with hangover, a speech ratio per chunk and the time since the last speech.

The tracker only *measures* speech. Audio is never dropped unless `vad.trim_silence_over_s`
is set, and then every dropped window is reported (`VadUpdate.drop`) so the caller can count
it. Times are on the 16 kHz output timeline (gaps from overruns are filled upstream), so a
segment's seconds are the recording's seconds.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Protocol

import numpy as np
import numpy.typing as npt

from edge_recorder.config.model import VadConfig

RATE = 16000
F32 = npt.NDArray[np.float32]
Bools = npt.NDArray[np.bool_]
_OFFSET_MARGIN = 0.15  # hysteresis: once in speech, stay while p >= threshold - margin
# The (empty, read-only) arrays of an update that decided no window, shared by all of them
_NO_PROBS: F32 = np.zeros(0, np.float32)
_NO_FLAGS: Bools = np.zeros(0, np.bool_)
_NO_PROBS.flags.writeable = False
_NO_FLAGS.flags.writeable = False


class VadEngine(Protocol):
    """Speech probability per fixed window of 16 kHz mono float32 audio."""

    name: str
    window: int  # samples per decision

    def probabilities(self, windows: F32) -> F32:
        """`windows` has shape (k, window) in time order; returns k probabilities."""
        ...

    def reset(self) -> None: ...


ENGINES = ("silero", "webrtc", "energy")


def make_engine(name: str, config: VadConfig | None = None) -> VadEngine:
    """Build an engine by name (imports kept local: onnxruntime is slow to load and big;
    Silero runs on numpy unless `vad.silero_backend = "onnxruntime"`)."""
    config = config or VadConfig()
    if name == "silero" and config.silero_backend == "numpy":  # no onnxruntime import
        from edge_recorder.audio.vad_engines.silero_numpy import SileroNumpyVad

        return SileroNumpyVad()
    if name == "silero":
        from edge_recorder.audio.vad_engines.silero import SileroVad

        return SileroVad()
    if name == "webrtc":
        from edge_recorder.audio.vad_engines.webrtc import WebRtcVad

        return WebRtcVad(config.webrtc_aggressiveness)
    if name == "energy":
        from edge_recorder.audio.vad_engines.energy import EnergyVad

        return EnergyVad()
    raise ValueError(f"unknown VAD engine {name!r} (choose from {', '.join(ENGINES)})")


@dataclass(frozen=True)
class VadUpdate:
    """What the windows decided in one call say; `probabilities[i]` covers
    [start_s + i*window_s, start_s + (i+1)*window_s)."""

    start_s: float
    window_s: float
    probabilities: F32
    speech: Bools  # after threshold, hysteresis and hangover
    drop: Bools  # windows trim_silence_over_s would drop (all False unless configured)
    segments: list[tuple[float, float]]  # segments that closed during this call
    speech_ratio: float  # share of this call's decided audio flagged as speech
    time_since_speech_s: float
    in_speech: bool
    decided_s: float = 0.0  # audio these windows cover


def merge_updates(updates: list[VadUpdate]) -> VadUpdate:
    """Several consecutive updates as one (what a caller sees for a multi-stage flush)."""
    first, last = updates[0], updates[-1]
    decided = sum(u.decided_s for u in updates)
    speech = sum(u.speech_ratio * u.decided_s for u in updates)
    return VadUpdate(
        start_s=first.start_s,
        window_s=first.window_s,
        probabilities=np.concatenate([u.probabilities for u in updates]),
        speech=np.concatenate([u.speech for u in updates]),
        drop=np.concatenate([u.drop for u in updates]),
        segments=[seg for u in updates for seg in u.segments],
        speech_ratio=speech / decided if decided else 0.0,
        time_since_speech_s=last.time_since_speech_s,
        in_speech=last.in_speech,
        decided_s=decided,
    )


@dataclass
class VadTotals:
    """A whole recording's speech: segments (closed, in order) and seconds."""

    segments: list[tuple[float, float]] = field(default_factory=list)
    decided_s: float = 0.0
    speech_s: float = 0.0
    dropped_s: float = 0.0

    @property
    def speech_ratio(self) -> float:
        return self.speech_s / self.decided_s if self.decided_s else 0.0


class VoiceActivity:
    """Streaming VAD for one recording: feed 16 kHz mono float32 of any length."""

    def __init__(self, engine: VadEngine, config: VadConfig) -> None:
        self.engine = engine
        self.window = engine.window
        self.window_s = engine.window / RATE
        self.onset = config.threshold
        self.offset = max(0.01, config.threshold - _OFFSET_MARGIN)
        self.hangover_s = config.hangover_ms / 1000
        self.trim_s = config.trim_silence_over_s
        # Scored in batches: waking the network every 100 ms chunk costs ~2.5x per window
        # what a 400 ms batch does (caches are cold after each idle gap; benchmarks/). With
        # trimming on the decision gates the audio, so then every chunk is scored at once.
        self.batch = 0 if self.trim_s is not None else config.batch_ms * RATE // 1000
        self.totals = VadTotals()
        self._pending = np.zeros(0, np.float32)
        self._windows = 0  # windows decided so far
        self._in_speech = False
        self._seg_start = 0.0
        self._last_speech_end: float | None = None
        self._end_s = 0.0  # audio seen so far, in seconds
        self._decided_end_s = 0.0  # audio decided so far (the tracker's "now")

    @property
    def pending_samples(self) -> int:
        """Samples received but not decided yet (less than a batch plus one window)."""
        return int(self._pending.size)

    def process(self, audio: F32) -> VadUpdate:
        """Decide the whole windows pending once a batch is due; else an empty update."""
        self._end_s += audio.size / RATE
        buf = np.concatenate((self._pending, audio)) if self._pending.size else audio
        if buf.size < max(self.batch, self.window):
            self._pending = buf.copy() if buf is audio else buf
            return self._nothing_decided()
        k = buf.size // self.window
        self._pending = buf[k * self.window :].copy()
        windows = buf[: k * self.window].reshape(k, self.window)
        probs = self.engine.probabilities(windows) if k else np.zeros(0, np.float32)
        return self._decide(probs, self.window_s * np.ones(k))

    def finish(self) -> VadUpdate:
        """Decide what is pending (the last window zero-padded) and close an open segment."""
        probs = np.zeros(0, np.float32)
        durations = np.zeros(0)
        if self._pending.size:
            k = -(-self._pending.size // self.window)
            padded = np.zeros(k * self.window, np.float32)
            padded[: self._pending.size] = self._pending
            probs = self.engine.probabilities(padded.reshape(k, self.window))
            durations = np.full(k, self.window_s)
            durations[-1] = (self._pending.size - (k - 1) * self.window) / RATE
            self._pending = np.zeros(0, np.float32)
        update = self._decide(probs, durations)
        if self._in_speech and self._last_speech_end is not None:
            end = min(self._last_speech_end + self.hangover_s, self._end_s)
            self._close(self._seg_start, end, update.segments)
            self._in_speech = False
            update = replace(update, in_speech=False)
        return update

    def time_since_speech_s(self) -> float:
        """Measured on the decided audio: a batch still pending is not yet silence."""
        return self._decided_end_s - (self._last_speech_end or 0.0)

    def _nothing_decided(self) -> VadUpdate:
        """What `_decide` returns for no windows, without its numpy work: three chunks in four
        only add to the batch, and on a cold cache that work cost ~0.1 ms each (issue #24)."""
        start_s = self._windows * self.window_s
        self._decided_end_s = start_s
        return VadUpdate(
            start_s=start_s,
            window_s=self.window_s,
            probabilities=_NO_PROBS,
            speech=_NO_FLAGS,
            drop=_NO_FLAGS,
            segments=[],
            speech_ratio=0.0,
            time_since_speech_s=self.time_since_speech_s(),
            in_speech=self._in_speech,
            decided_s=0.0,
        )

    def _decide(self, probs: F32, durations: npt.NDArray[np.float64]) -> VadUpdate:
        start_s = self._windows * self.window_s
        speech = np.zeros(probs.size, np.bool_)
        drop = np.zeros(probs.size, np.bool_)
        closed: list[tuple[float, float]] = []
        t0 = start_s
        for i, p in enumerate(probs.tolist()):
            t1 = t0 + float(durations[i])
            if p >= self.onset or (self._in_speech and p >= self.offset):
                if not self._in_speech:
                    self._in_speech, self._seg_start = True, t0
                self._last_speech_end = t1
            elif self._in_speech and t1 - (self._last_speech_end or 0.0) >= self.hangover_s:
                end = (self._last_speech_end or 0.0) + self.hangover_s
                self._close(self._seg_start, end, closed)
                self._in_speech = False
            speech[i] = self._in_speech
            if self.trim_s is not None and not self._in_speech:
                drop[i] = t1 - (self._last_speech_end or 0.0) > self.trim_s
            t0 = t1
        self._windows += probs.size
        self._decided_end_s = t0
        decided = float(durations.sum())
        flagged = float(durations[speech].sum())
        self.totals.decided_s += decided
        self.totals.dropped_s += float(durations[drop].sum())
        return VadUpdate(
            start_s=start_s,
            window_s=self.window_s,
            probabilities=probs,
            speech=speech,
            drop=drop,
            segments=closed,
            speech_ratio=flagged / decided if decided else 0.0,
            time_since_speech_s=self.time_since_speech_s(),
            in_speech=self._in_speech,
            decided_s=decided,
        )

    def _close(self, start: float, end: float, closed: list[tuple[float, float]]) -> None:
        segment = (round(start, 3), round(end, 3))
        closed.append(segment)
        self.totals.segments.append(segment)
        self.totals.speech_s += end - start
