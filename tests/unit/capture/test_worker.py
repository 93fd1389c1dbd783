"""The capture thread with a scripted source: what it posts to the loop, what it stores, and
when it stops beating the watchdog heartbeat (a stalled driver read) and when not (no mic)."""

from __future__ import annotations

import queue
import threading

import numpy as np
import pytest

from edge_recorder.audio.frames import AudioFormat, DeviceLost, EndOfStream, Frames, SourceEvent
from edge_recorder.audio.pipeline import Pipeline
from edge_recorder.capture import idle
from edge_recorder.capture import worker as audio_worker
from edge_recorder.capture.worker import AudioWorker
from edge_recorder.config.model import Config
from edge_recorder.encounter import events as ev
from edge_recorder.spool import Spool
from edge_recorder.support.heartbeat import Heartbeat
from tests.support.helpers import poll_until

FMT = AudioFormat(16000, 1, "S16_LE")
BLOCK = 320  # 20 ms


class ScriptedSource:
    """Hands out the scripted items in order, then `tail` (None = nothing arrives) forever."""

    def __init__(self, items: list[Frames | SourceEvent], tail: Frames | None = None) -> None:
        self.items = queue.SimpleQueue[Frames | SourceEvent]()
        for item in items:
            self.items.put(item)
        self._tail: Frames | SourceEvent | None = tail
        self.reads = 0
        self._stop = threading.Event()

    @property
    def format(self) -> AudioFormat:
        return FMT

    def start(self) -> None:
        pass

    def read(self, timeout: float | None = None) -> Frames | SourceEvent | None:
        self.reads += 1
        try:
            return self.items.get_nowait()
        except queue.Empty:
            self._stop.wait(0.005)  # a source waits for its next period
            return self._tail

    def stop(self) -> None:
        self._stop.set()


def blocks(n: int, start: int = 0) -> list[Frames]:
    rng = np.random.default_rng(7)
    out = []
    for i in range(n):
        pcm = (rng.standard_normal(BLOCK) * 3000).astype("<i2").tobytes()
        out.append(Frames(pcm, FMT, start + i * BLOCK))
    return out


@pytest.fixture(autouse=True)
def _idle_wait(monkeypatch: pytest.MonkeyPatch) -> None:
    """The tests' heartbeat max age is 0.3 s: an idle thread must wake well within it (the
    daemon's is CAPTURE_MAX_AGE_S, ten times IDLE_WAIT_S; see test_idle.py)."""
    monkeypatch.setattr(idle, "IDLE_WAIT_S", 0.05)


def run_worker(
    config: Config, source: ScriptedSource, spool: Spool
) -> tuple[AudioWorker, list[ev.Event], Heartbeat]:
    posted: list[ev.Event] = []
    beat = Heartbeat("capture", max_age_s=0.3)
    worker = AudioWorker(config, spool, posted.append, beat, source_factory=lambda: source)
    worker.start()
    return worker, posted, beat


def test_records_exactly_what_the_pipeline_makes_of_the_frames_while_open(
    config: Config, spool: Spool
) -> None:
    first, recorded = blocks(10), blocks(30, start=10 * BLOCK)
    source = ScriptedSource([*first])
    worker, posted, _ = run_worker(config, source, spool)
    poll_until(lambda: source.reads > len(first), what="idle audio read")
    guid = "6f1c8a43-41e7-4a51-9c5d-5f8f2c1d7e10"
    worker.open_recording("enc-1", 1, guid).result(5)
    for item in recorded:
        source.items.put(item)
    poll_until(lambda: source.items.empty() and source.reads > 45, what="recorded audio read")
    assert worker.close_recording("stop").result(5) > 0
    worker.stop()
    pipeline = Pipeline(FMT, config.audio, config.vad, config.encoding)
    want = b"".join(pipeline.process(f).encoded for f in recorded) + pipeline.finish().encoded
    info = spool.recording(guid)
    assert spool.read(guid, 0, info.length) == want and info.close_reason == "stop"
    assert isinstance(posted[0], ev.MicBack) and worker.mic.present


def test_a_stalled_source_stops_the_heartbeat_after_a_while(
    config: Config, spool: Spool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(audio_worker, "STALL_RESTART_S", 0.2)
    stall = DeviceLost("hw:X", "io-error", "hw:X delivered no audio for 1.0 s (device stalled)")
    source = ScriptedSource([*blocks(3), stall])
    worker, posted, beat = run_worker(config, source, spool)
    poll_until(lambda: not beat.is_fresh(), timeout=5, what="a stale heartbeat")
    assert worker.alive and any(isinstance(e, ev.MicLost) for e in posted)
    worker.stop()


def test_a_missing_mic_keeps_beating_and_the_end_of_a_wav_is_a_lost_mic(
    config: Config, spool: Spool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(audio_worker, "STALL_RESTART_S", 0.2)
    missing = DeviceLost("hw:X", "missing", "hw:X not found")
    source = ScriptedSource([*blocks(3), missing])
    worker, posted, beat = run_worker(config, source, spool)
    poll_until(lambda: source.reads > 25, timeout=10, what="many empty reads")  # > 1 s
    assert beat.is_fresh() and posted[-1] == ev.MicLost("hw:X not found")
    worker.stop()

    ended = ScriptedSource([*blocks(2), EndOfStream(2 * BLOCK)])
    worker, posted, beat = run_worker(config, ended, spool)
    poll_until(lambda: bool(posted) and isinstance(posted[-1], ev.MicLost), what="the end")
    assert isinstance(posted[-1], ev.MicLost) and "ended" in posted[-1].detail
    assert not worker.mic.present
    assert beat.is_fresh()
    worker.stop()


def test_periods_are_processed_a_chunk_at_a_time_and_a_gap_ends_the_batch(
    config: Config, spool: Spool, monkeypatch: pytest.MonkeyPatch
) -> None:
    sizes: list[int] = []

    class CountingPipeline(Pipeline):
        def process(self, frames: Frames):  # type: ignore[no-untyped-def]
            sizes.append(frames.count)
            return super().process(frames)

    monkeypatch.setattr(audio_worker, "Pipeline", CountingPipeline)
    before = blocks(7)
    gap = Frames(blocks(1)[0].data, FMT, 8 * BLOCK, lost_before=BLOCK)  # one period lost
    after = blocks(3, start=9 * BLOCK)
    source = ScriptedSource([])
    worker, _, _ = run_worker(config, source, spool)
    worker.open_recording("enc-1", 1, "0b0c5e55-8d4e-4f7e-9a57-1d3c0c6f2a11").result(5)
    for item in [*before, gap, *after]:
        source.items.put(item)
    poll_until(lambda: sum(sizes) == 11 * BLOCK, what="all audio processed")
    worker.stop()
    # chunks of encoding.chunk_ms (whole periods), cut short by the gap, which is processed
    # on its own
    chunk = config.encoding.chunk_ms * FMT.rate // 1000 // BLOCK
    assert 1 < chunk < 7
    assert sizes == [chunk * BLOCK, (7 - chunk) * BLOCK, BLOCK, 3 * BLOCK]
