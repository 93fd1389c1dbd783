"""AlsaSource between recordings (issue #24): several periods per wake-up while idle, and a
recording opened meanwhile still starts with the block being captured at the open."""

from __future__ import annotations

import threading
import time

import numpy as np

from edge_recorder.audio.frames import AudioFormat, Frames
from edge_recorder.audio.pipeline import Pipeline
from edge_recorder.capture.alsa import AlsaSource
from edge_recorder.capture.worker import AudioWorker
from edge_recorder.config.model import Config
from edge_recorder.encounter import events as ev
from edge_recorder.spool import Spool
from tests.support.helpers import poll_until

FMT = AudioFormat(16000, 1, "S16_LE")
PERIOD = 320  # 20 ms
PERIOD_S = PERIOD / FMT.rate


def payload(index: int) -> bytes:
    rng = np.random.default_rng(index)
    return (rng.standard_normal(PERIOD) * 3000).astype("<i2").tobytes()


class PacedPcm:
    """A sound card: period k is captured at t0 + (k + 1) * 20 ms; read() waits for it."""

    def __init__(self) -> None:
        self.t0 = time.monotonic()
        self.index = 0
        self.waits = 0  # reads that had to wait for their period (wake-ups at the edge)
        self.closed = threading.Event()

    def due(self, index: int) -> float:
        return self.t0 + (index + 1) * PERIOD_S

    def read(self) -> tuple[int, bytes]:
        wait = self.due(self.index) - time.monotonic()
        if wait > 0:
            self.waits += 1
            self.closed.wait(wait)
        data = payload(self.index)
        self.index += 1
        return PERIOD, data

    def timestamp(self) -> tuple[float | None, int]:
        return None, 0

    def drop(self) -> None:
        pass

    def close(self) -> None:
        self.closed.set()


def paced_source() -> tuple[AlsaSource, list[PacedPcm]]:
    pcms: list[PacedPcm] = []

    def opener(device: str, fmt: AudioFormat, period: int, periods: int) -> PacedPcm:
        pcms.append(PacedPcm())
        return pcms[-1]

    source = AlsaSource("plughw:CARD=X,DEV=0", FMT, period_ms=20, buffer_periods=8, opener=opener)
    return source, pcms


def drain(source: AlsaSource, until: int) -> list[Frames]:
    got: list[Frames] = []
    while sum(f.count for f in got) < until:
        item = source.read(timeout=5)
        assert isinstance(item, Frames), item
        got.append(item)
    return got


def test_idle_reads_several_periods_per_wake_up_without_losing_any() -> None:
    source, pcms = paced_source()
    source.set_idle(True)
    source.start()
    frames = drain(source, 60 * PERIOD)  # 1.2 s
    waits_idle = pcms[0].waits
    source.set_idle(False)
    start = pcms[0].index
    frames += drain(source, (pcms[0].index + 30) * PERIOD - sum(f.count for f in frames))
    waits_live = pcms[0].waits - waits_idle
    source.stop()
    assert [f.start_frame for f in frames] == [i * PERIOD for i in range(len(frames))]
    assert all(f.lost_before == 0 for f in frames) and source.stats.overruns == 0
    assert b"".join(f.data for f in frames[:60]) == b"".join(payload(i) for i in range(60))
    # idle: one wait per doze cycle (4 periods asleep + the one at the edge); live: each one
    assert waits_idle <= 60 / 5 + 6
    assert waits_live >= (pcms[0].index - start) - 5


def test_resume_names_the_block_being_captured_now() -> None:
    source, pcms = paced_source()
    source.set_idle(True)
    source.start()
    drain(source, 30 * PERIOD)
    asked = time.monotonic()
    edge = source.resume(timeout=2)
    source.stop()
    assert edge is not None and edge % PERIOD == 0
    k = edge // PERIOD
    pcm = pcms[0]
    # block k is still being captured when resume() is called (nothing captured before the
    # call is named); block k - 1 was complete, or k - 2 if the thread was held up a period
    assert pcm.due(k) >= asked - 0.005
    assert pcm.due(k - 1) <= asked + PERIOD_S + 0.005


def test_a_recording_opened_while_the_source_dozes_starts_at_the_open(
    config: Config, spool: Spool
) -> None:
    """Without the resume, the periods captured during the doze (up to 80 ms here, 480 ms
    with the default 120 ms periods) would open the recording: audio from before the press."""
    source, pcms = paced_source()
    posted: list[ev.Event] = []
    worker = AudioWorker(config, spool, posted.append, source_factory=lambda: source)
    worker.start()
    poll_until(lambda: bool(pcms) and pcms[0].index > 40, what="idle audio")

    def dozing() -> bool:  # periods captured but not read yet: only while the thread dozes
        return time.monotonic() > pcms[0].due(pcms[0].index) + 1.5 * PERIOD_S

    poll_until(dozing, what="a doze with periods waiting")
    guid = "6f1c8a43-41e7-4a51-9c5d-5f8f2c1d7e10"
    opened = time.monotonic()
    worker.open_recording("enc-1", 1, guid).result(5)
    poll_until(lambda: pcms[0].index > 100, what="recorded audio")
    worker.close_recording("stop").result(5)
    worker.stop()
    info = spool.recording(guid)
    stored = spool.read(guid, 0, info.length)
    pcm = pcms[0]
    matches = []
    for first in range(20, 100):
        pipeline = Pipeline(FMT, config.audio, config.vad, config.encoding)
        out = b"".join(pipeline.process(Frames(payload(i), FMT, i * PERIOD)).encoded
                       for i in range(first, first + 60))  # fmt: skip
        if stored.startswith(out[: len(out) // 2]):
            matches.append(first)
    assert len(matches) == 1
    first = matches[0]
    # the first recorded block is the one being captured at the open (or the next one)
    assert opened - 0.005 <= pcm.due(first) <= opened + 2 * PERIOD_S + 0.05
