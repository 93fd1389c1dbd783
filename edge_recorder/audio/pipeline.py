"""One recording's audio path: capture Frames → dsp → vad → encoder → bytes for the spool.

The daemon, `record`, `analyze` and the benchmark all use this class, so what is measured is
what ships. Frames are coalesced into batches of `encoding.chunk_ms` before processing: the
per-call overhead of numpy, soxr and onnxruntime is paid ten times a second instead of fifty,
which halves the CPU cost (see benchmarks/). The output does not depend on the batching (the
DSP is block-size invariant), and a gap in the source timeline (an overrun, an outage) is
filled with zeros so the encoded stream stays sample-aligned with the device clock.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from edge_recorder.audio.codecs import Encoder, make_encoder
from edge_recorder.audio.dsp import Dsp, Meters, MeterTotals, to_pcm16
from edge_recorder.audio.frames import AudioFormat, Frames
from edge_recorder.audio.vad import (
    VadEngine,
    VadTotals,
    VadUpdate,
    VoiceActivity,
    make_engine,
    merge_updates,
)
from edge_recorder.config.model import AudioConfig, EncodingConfig, VadConfig
from edge_recorder.support.logs import get_logger

log = get_logger(__name__)
I16 = npt.NDArray[np.int16]
F32 = npt.NDArray[np.float32]


@dataclass(frozen=True)
class ChunkResult:
    """What one call produced: encoded bytes for the spool, the processed PCM, and readings."""

    encoded: bytes
    pcm: I16  # processed 16 kHz mono released in this call (after any trimming)
    meters: Meters | None  # None when the call only buffered input; totals: Pipeline.stats
    vad: VadUpdate | None
    dropped_samples: int = 0  # trimmed by vad.trim_silence_over_s (0 unless configured)


@dataclass
class PipelineStats:
    """Totals for the whole recording; `cpu_s` splits process CPU time by stage (zeros for a
    pipeline built with timed=False)."""

    meters: MeterTotals
    vad: VadTotals
    encoded_bytes: int = 0
    output_samples: int = 0  # samples handed to the encoder
    dropped_samples: int = 0
    timeline_gaps: int = 0  # blocks whose start_frame showed a gap
    cpu_s: dict[str, float] = field(default_factory=lambda: {"dsp": 0.0, "vad": 0.0, "encode": 0.0})


class Pipeline:
    """dsp → vad → encoder for one recording. Not thread-safe: one consumer thread."""

    def __init__(
        self,
        fmt: AudioFormat,
        audio: AudioConfig,
        vad: VadConfig,
        encoding: EncodingConfig,
        *,
        engine: VadEngine | None = None,
        encode: bool = True,
        timed: bool = True,
    ) -> None:
        self.format = fmt
        # `stats.cpu_s` reads process CPU time (a system call, not the vDSO) four times a
        # chunk; the benchmarks read it, the capture thread does not (timed=False).
        self._clock = time.process_time if timed else _no_clock
        self.dsp = Dsp(audio, fmt)
        if engine is not None:
            engine.reset()  # an engine reused across recordings (model load is ~0.1 s)
        self.vad = VoiceActivity(engine or make_engine(vad.engine, vad), vad)
        self.encoder: Encoder | None = make_encoder(encoding) if encode else None
        self._batch_frames = max(1, fmt.rate * encoding.chunk_ms // 1000)
        self._batch: list[Frames] = []
        self._batched = 0
        self._next_frame: int | None = None
        self._held = np.zeros(0, np.float32)  # audio awaiting a VAD decision (trim mode)
        self._trim = vad.trim_silence_over_s is not None
        self.stats = PipelineStats(meters=self.dsp.totals, vad=self.vad.totals)
        self._finished = False

    def process(self, frames: Frames) -> ChunkResult:
        """Queue a block; runs the stages once `encoding.chunk_ms` of audio is queued."""
        if self._finished:
            raise RuntimeError("pipeline already finished")
        frames = self._check_timeline(frames)
        if frames.lost_before and self._batch:
            result = self._run(self._take_batch())
            self._queue(frames)
            return result
        self._queue(frames)
        if self._batched < self._batch_frames:
            return ChunkResult(b"", np.zeros(0, np.int16), None, None)
        return self._run(self._take_batch())

    def finish(self) -> ChunkResult:
        """Process what is queued, flush every stage, and close the encoded stream."""
        if self._finished:
            raise RuntimeError("pipeline already finished")
        self._finished = True
        parts = [self._run(self._take_batch())] if self._batch else []
        cpu = self.stats.cpu_s
        t0 = self._clock()
        tail, meters = self.dsp.finish()
        t1 = self._clock()
        update = self.vad.process(tail)
        final = self.vad.finish()
        t2 = self._clock()
        released, dropped = self._release(tail, [update, final], final=True)
        encoded = self._encode(released)
        if self.encoder is not None:
            closing = self.encoder.finish()
            self.stats.encoded_bytes += len(closing)
            encoded += closing
        t3 = self._clock()
        cpu["dsp"] += t1 - t0
        cpu["vad"] += t2 - t1
        cpu["encode"] += t3 - t2
        updates = [p.vad for p in parts if p.vad is not None]
        return ChunkResult(
            b"".join(p.encoded for p in parts) + encoded,
            np.concatenate([*(p.pcm for p in parts), released]),
            meters,
            merge_updates([*updates, update, final]),
            sum(p.dropped_samples for p in parts) + dropped,
        )

    @property
    def duration_s(self) -> float:
        """Input timeline covered so far (including filled gaps)."""
        return self.stats.meters.input_frames / self.format.rate

    def _check_timeline(self, frames: Frames) -> Frames:
        """Trust `start_frame` over `lost_before`: the timeline is what keeps alignment."""
        if frames.format != self.format:
            raise ValueError(f"frames are {frames.format}, pipeline expects {self.format}")
        expected = self._next_frame if self._next_frame is not None else frames.start_frame
        gap = frames.start_frame - expected
        if gap < 0:
            raise ValueError(
                f"frames overlap the timeline: start {frames.start_frame}, expected {expected}"
            )
        self._next_frame = frames.start_frame + frames.count
        if gap != frames.lost_before:
            log.warning("timeline gap differs from lost_before", gap=gap, lost=frames.lost_before)
            frames = Frames(frames.data, frames.format, frames.start_frame, gap)
        if gap:
            self.stats.timeline_gaps += 1
        return frames

    def _queue(self, frames: Frames) -> None:
        self._batch.append(frames)
        self._batched += frames.count

    def _take_batch(self) -> Frames:
        batch, self._batch, self._batched = self._batch, [], 0
        if len(batch) == 1:
            return batch[0]
        first = batch[0]
        data = b"".join(f.data for f in batch)
        return Frames(data, first.format, first.start_frame, first.lost_before)

    def _run(self, frames: Frames) -> ChunkResult:
        cpu = self.stats.cpu_s
        t0 = self._clock()
        audio, meters = self.dsp.process(frames)
        t1 = self._clock()
        update = self.vad.process(audio)
        t2 = self._clock()
        released, dropped = self._release(audio, [update], final=False)
        encoded = self._encode(released)
        t3 = self._clock()
        cpu["dsp"] += t1 - t0
        cpu["vad"] += t2 - t1
        cpu["encode"] += t3 - t2
        return ChunkResult(encoded, released, meters, update, dropped)

    def _encode(self, pcm: I16) -> bytes:
        self.stats.output_samples += pcm.size
        if self.encoder is None:
            return b""
        encoded = self.encoder.encode(pcm)
        self.stats.encoded_bytes += len(encoded)
        return encoded

    def _release(self, audio: F32, updates: list[VadUpdate], *, final: bool) -> tuple[I16, int]:
        """Processed audio ready for the encoder; with trimming, only once VAD decided it."""
        if not self._trim:
            return to_pcm16(audio), 0
        held = np.concatenate((self._held, audio)) if self._held.size else audio
        drop = np.concatenate([u.drop for u in updates])
        window = self.vad.window
        decided = held.size if final else drop.size * window
        mask = np.repeat(~drop, window)[:decided] if drop.size else np.ones(decided, np.bool_)
        kept = held[:decided][mask[:decided]]
        self._held = held[decided:].copy()
        dropped = int(decided - kept.size)
        self.stats.dropped_samples += dropped
        return to_pcm16(kept), dropped


def _no_clock() -> float:
    return 0.0


def summary(pipeline: Pipeline) -> dict[str, object]:
    """The recording's readings in the shape `analyze --json` prints (stable keys)."""
    meters, vad = pipeline.stats.meters, pipeline.stats.vad
    return {
        "duration_s": round(pipeline.duration_s, 3),
        "speech_segments": [[start, end] for start, end in vad.segments],
        "speech_ratio": round(vad.speech_ratio, 4),
        "rms_dbfs": round(meters.rms_dbfs, 2),
        "peak_dbfs": round(meters.peak_dbfs, 2),
        "clipped_samples": meters.clipped_samples,
        "digital_silence_s": round(meters.digital_silence_s, 3),
    }
