"""The capture thread between recordings (issue #24): levels, clipping and the dead-mic alarm
from the raw frames, no DSP/VAD pipeline, few wake-ups, and the alarm still on time."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest

from edge_recorder.app.daemon import CAPTURE_MAX_AGE_S
from edge_recorder.audio.dsp import Dsp
from edge_recorder.audio.frames import AudioFormat, DeviceLost, EndOfStream, Frames, SourceEvent
from edge_recorder.audio.pipeline import Pipeline
from edge_recorder.capture import idle
from edge_recorder.capture import worker as audio_worker
from edge_recorder.capture.base import Pacer
from edge_recorder.capture.worker import AudioWorker
from edge_recorder.config.model import Config
from edge_recorder.encounter import events as ev
from edge_recorder.spool import Spool
from tests.support.helpers import poll_until

FMT = AudioFormat(16000, 1, "S16_LE")
BLOCK = 320  # 20 ms


def loud(n_blocks: int, seed: int = 7, clip_every: int = 0) -> list[bytes]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n_blocks):
        pcm = rng.standard_normal(BLOCK) * 3000
        if clip_every and i % clip_every == 0:
            pcm[:5] = 32767
        out.append(pcm.astype("<i2").tobytes())
    return out


class PacedSource:
    """Blocks released at real time (block k at start + (k + 1) * 20 ms), like a sound card."""

    def __init__(self, payloads: list[bytes]) -> None:
        self.payloads = payloads
        self.pacer = Pacer(BLOCK / FMT.rate, 1.0)
        self.index = 0
        self.empty_reads = 0  # reads that found nothing queued: about one per wake-up
        self.started_at = 0.0
        self.lock = threading.Lock()

    @property
    def format(self) -> AudioFormat:
        return FMT

    def start(self) -> None:
        self.started_at = time.monotonic()
        self.pacer.start()

    def read(self, timeout: float | None = None) -> Frames | SourceEvent | None:
        if self.index >= len(self.payloads) or not self.pacer.wait_for_block(self.index, timeout):
            self.empty_reads += 1
            if self.index >= len(self.payloads):
                self.pacer._stopped.wait(timeout or 0)
            return None
        frames = Frames(self.payloads[self.index], FMT, self.index * BLOCK)
        self.index += 1
        return frames

    def stop(self) -> None:
        self.pacer.stop()


@pytest.fixture
def config(tmp_path: Path) -> Config:
    return Config.model_validate(
        {
            "vad": {"engine": "energy"},
            "audio": {"digital_silence_s": 1.0},
            "spool": {"dir": str(tmp_path / "spool"), "key_file": str(tmp_path / "key")},
        }
    )


def start(config: Config, spool: Spool, source: PacedSource) -> tuple[AudioWorker, list[ev.Event]]:
    posted: list[ev.Event] = []
    worker = AudioWorker(config, spool, posted.append, source_factory=lambda: source)
    worker.start()
    return worker, posted


def test_idle_levels_come_from_the_raw_frames_without_dsp_or_vad(
    config: Config, spool: Spool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Loud noise that the energy VAD calls speech: no pipeline is built and no
    SpeechDetected is posted while idle; level, peak and clipping still reach the status."""
    built: list[bool] = []

    class NoIdlePipeline(Pipeline):
        def __init__(self, *args: object, **kwargs: object) -> None:
            built.append(True)
            super().__init__(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(audio_worker, "Pipeline", NoIdlePipeline)
    payloads = loud(50, clip_every=10)  # 1 s, 5 clipped samples every 10 blocks
    source = PacedSource(payloads)
    worker, posted = start(config, spool, source)
    poll_until(lambda: source.index == len(payloads) and source.empty_reads > 0, what="audio")
    poll_until(lambda: worker.mic.clipped_samples == 25, what="every block metered")
    worker.stop()
    assert not built and not any(isinstance(e, ev.SpeechDetected) for e in posted)
    dsp = Dsp(config.audio, FMT)
    for i, payload in enumerate(payloads):
        dsp.process(Frames(payload, FMT, i * BLOCK))
    # the status shows the last pass (part of the second): the whole second's level +- 1 dB
    assert worker.mic.level_dbfs == pytest.approx(dsp.totals.rms_dbfs, abs=1.0)
    assert worker.mic.peak_dbfs == pytest.approx(0.0, abs=0.1)
    assert dsp.totals.clipped_in == worker.mic.clipped_samples
    assert not worker.mic.digital_silence and posted == [ev.MicBack()]


def test_an_idle_thread_wakes_a_few_times_a_second_not_once_a_period(
    config: Config, spool: Spool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(idle, "IDLE_WAIT_S", 0.25)
    payloads = loud(75)  # 1.5 s in 20 ms periods
    source = PacedSource(payloads)
    worker, _ = start(config, spool, source)
    poll_until(lambda: source.index == len(payloads), what="all audio read")
    worker.stop()
    # 1.5 s / 0.25 s = 6 passes (+ the first short waits before any audio): not 75
    assert source.empty_reads <= 12


def test_the_dead_mic_alarm_keeps_its_timing_between_recordings(
    config: Config, spool: Spool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """0.3 s of sound, then zeros: the alarm is due 1.0 s (audio.digital_silence_s) into the
    zeros. The idle thread wakes for it even with a long idle wait (5 s here), and only then."""
    monkeypatch.setattr(idle, "IDLE_WAIT_S", 5.0)
    payloads = loud(15) + [bytes(2 * BLOCK)] * 100  # 0.3 s live, 2 s dead
    source = PacedSource(payloads)
    times: list[float] = []

    def post(event: ev.Event) -> None:
        if event == ev.DigitalSilence(True):
            times.append(time.monotonic())

    worker = AudioWorker(config, spool, post, source_factory=lambda: source)
    worker.start()
    poll_until(lambda: bool(times), timeout=5, what="the digital-silence alarm")
    worker.stop()
    due = source.started_at + 0.3 + 1.0
    assert due - 0.02 <= times[0] <= due + 0.4  # on time: within a period or two of due
    assert worker.mic.digital_silence


def test_a_recording_opened_while_idle_starts_with_the_first_block_after_the_open(
    config: Config, spool: Spool
) -> None:
    """Audio queued before the open is metered, not recorded: the recording holds exactly
    what Pipeline makes of the blocks from the first one read after the open."""
    payloads = loud(60)
    source = PacedSource(payloads)
    worker, _ = start(config, spool, source)
    poll_until(lambda: source.index >= 20, what="idle audio")
    guid = "6f1c8a43-41e7-4a51-9c5d-5f8f2c1d7e10"
    worker.open_recording("enc-1", 1, guid).result(5)
    first = source.index  # the worker read nothing since the open returned
    poll_until(lambda: source.index == len(payloads), what="recorded audio")
    assert worker.close_recording("stop").result(5) > 0
    worker.stop()
    assert first < len(payloads) - 20
    pipeline = Pipeline(FMT, config.audio, config.vad, config.encoding)
    frames = [Frames(p, FMT, i * BLOCK) for i, p in enumerate(payloads)]
    info = spool.recording(guid)
    got = spool.read(guid, 0, info.length)
    # the recording starts at the first block read after the open: that block or the next
    wants = []
    for start_at in (first - 1, first, first + 1):
        p = Pipeline(FMT, config.audio, config.vad, config.encoding)
        wants.append(b"".join(p.process(f).encoded for f in frames[start_at:]) + p.finish().encoded)
    assert got in wants and pipeline is not None


def test_the_idle_wait_is_far_below_the_watchdog_heartbeat_age() -> None:
    assert idle.IDLE_WAIT_S * 5 <= CAPTURE_MAX_AGE_S
    assert idle.IDLE_WAIT_S <= 0.5  # levels on status and mic lost/back within 0.5 s


def test_a_loss_at_start_up_ends_the_first_attempt_at_once(config: Config, spool: Spool) -> None:
    """READY waits for `attempted`: a mic that is busy at start-up must say so right away
    (READY's STATUS names it), not after FIRST_AUDIO_WAIT_S of silence."""

    class BusyThenQuiet(PacedSource):
        def read(self, timeout: float | None = None) -> Frames | SourceEvent | None:
            if not self.empty_reads:
                self.empty_reads += 1
                return None  # the source thread is still opening the device
            if self.empty_reads == 1:
                self.empty_reads += 1
                return DeviceLost("hw:X", "busy", "hw:X is busy")
            self.pacer._stopped.wait(timeout or 0)
            return None

    source = BusyThenQuiet([])
    worker, posted = start(config, spool, source)
    started = time.monotonic()
    assert worker.attempted.wait(5)
    took = time.monotonic() - started
    worker.stop()
    assert posted[0] == ev.MicLost("hw:X is busy")
    assert took < audio_worker.FIRST_AUDIO_WAIT_S / 2


def test_take_queued_stops_at_the_first_block_of_a_recording_and_at_the_end() -> None:
    class Queue:
        def __init__(self, items: list[Frames | SourceEvent]) -> None:
            self.items = items

        @property
        def format(self) -> AudioFormat:
            return FMT

        def start(self) -> None: ...

        def stop(self) -> None: ...

        def read(self, timeout: float | None = None) -> Frames | SourceEvent | None:
            return self.items.pop(0) if self.items else None

    blocks = [Frames(p, FMT, i * BLOCK) for i, p in enumerate(loud(6))]
    lost = DeviceLost("hw:X", "unplugged", "gone")
    source = Queue([*blocks[:2], lost, *blocks[2:]])
    items, first = idle.take_queued(source, 10**6, start_at=4 * BLOCK)
    assert items == [*blocks[:2], lost, *blocks[2:4]] and first == blocks[4]
    assert source.items == [blocks[5]]  # not read past the recording's first block
    ended = Queue([blocks[0], EndOfStream(BLOCK), EndOfStream(BLOCK)])
    assert idle.take_queued(ended, 10**6) == ([blocks[0], EndOfStream(BLOCK)], None)
    capped = Queue(list(blocks))
    assert len(idle.take_queued(capped, 3 * BLOCK)[0]) == 3  # an endless source: a batch


def test_a_dead_mic_stays_one_alarm_across_a_recording(config: Config, spool: Spool) -> None:
    """Each open (and each close) starts a fresh meter; a mic that stays dead must not read
    as "signal back" then a new alarm a second later. Live audio after it does clear it."""
    config = config.model_copy(
        update={"audio": config.audio.model_copy(update={"digital_silence_s": 0.2})}
    )
    payloads = [bytes(2 * BLOCK)] * 90 + loud(10)  # 1.8 s dead, then 0.2 s of sound
    source = PacedSource(payloads)
    worker, posted = start(config, spool, source)
    poll_until(lambda: ev.DigitalSilence(True) in posted, what="the idle alarm")
    guid = "6f1c8a43-41e7-4a51-9c5d-5f8f2c1d7e10"
    worker.open_recording("enc-1", 1, guid).result(5)
    poll_until(lambda: source.index >= 60, what="dead audio recorded")
    assert worker.mic.digital_silence
    worker.close_recording("stop").result(5)
    poll_until(lambda: ev.DigitalSilence(False) in posted, what="the sound at the end")
    worker.stop()
    assert posted == [ev.MicBack(), ev.DigitalSilence(True), ev.DigitalSilence(False)]
