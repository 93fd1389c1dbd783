"""The capture thread: source → pipeline → spool writer, plus the mic's health for the loop.

One dedicated thread owns everything that may block on hardware or disk in the audio path:
`source.read()`, the DSP/VAD/encoder, and `RecordingWriter.append()`. The asyncio loop never
waits on it: it sends commands (open/close a recording) through a queue and gets the answers
as `concurrent.futures.Future`s, and this thread posts controller events back with
`loop.call_soon_threadsafe` (through the `post` callback). It beats the watchdog heartbeat
every time round, including while it waits to re-open a missing source, so a hung driver
call (and only that) stops the systemd watchdog pings.

While a recording is open the thread reads one encoder chunk at a time and runs it through
that recording's `Pipeline` (DSP, VAD, encoder), appending the bytes to the spool. Each
recording gets a fresh `Pipeline` fed from the first block after the open, so its bytes are
exactly what `Pipeline` makes of those source frames; the frame range is logged ("recording
audio opened/closed", `start_frame`/`end_frame`) so a test can reproduce the bytes offline.

Between recordings ("idle means idle", issue #24) the thread runs no pipeline: it wakes on a
command or every IDLE_WAIT_S, meters the queued blocks on the raw frames, and lets an ALSA
source read several periods per wake-up; a recording still starts with the first block after
its open. See capture/idle.py.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from edge_recorder.audio.frames import (
    AudioSource,
    DeviceBack,
    DeviceLost,
    EndOfStream,
    Frames,
    Overrun,
    SourceEvent,
)
from edge_recorder.audio.pipeline import Pipeline
from edge_recorder.audio.vad import VadEngine, make_engine
from edge_recorder.capture.base import backoff_delays
from edge_recorder.capture.chunk_reader import read_chunk
from edge_recorder.capture.commands import Commands, Open, Work
from edge_recorder.capture.idle import (
    IDLE_BATCH_S,
    RESUME_WAIT_S,
    IdleLevels,
    IdleSource,
    take_queued,
)
from edge_recorder.capture.mic import MicHealth
from edge_recorder.capture.recording import OpenRecording, storage_reason
from edge_recorder.capture.registry import open_source
from edge_recorder.config.model import Config
from edge_recorder.encounter import events as ev
from edge_recorder.spool import Spool, SpoolError, SpoolFull, SpoolRefused
from edge_recorder.status import MicStatus
from edge_recorder.support.heartbeat import Heartbeat
from edge_recorder.support.logs import get_logger
from edge_recorder.support.threads import name_native_thread

log = get_logger(__name__)

READ_TIMEOUT_S = 0.1  # how long past a chunk's own length the thread waits for its audio
# A source whose own read thread is stuck in a driver call reports "device stalled" and never
# recovers by itself; after this long the heartbeat stops, so systemd's watchdog restarts the
# service (which re-opens the device). An unplugged mic is not a stall: it keeps beating.
STALL_RESTART_S = 10.0
FIRST_AUDIO_WAIT_S = 2.0  # READY=1 waits this long for the first audio or loss from a source
OUTPUT_RATE = 16000

Post = Callable[[ev.Event], None]
SourceFactory = Callable[[], AudioSource]


class AudioWorker:
    """Start with `start()`; drive with `open_recording`/`close_recording`/`barrier` from the
    loop; read `mic` from any thread; `stop()` ends the thread (closing an open recording)."""

    def __init__(
        self,
        config: Config,
        spool: Spool,
        post: Post,
        heartbeat: Heartbeat | None = None,
        *,
        source_factory: SourceFactory | None = None,
    ) -> None:
        self._config = config
        self._spool = spool
        self._post = post
        self._heartbeat = heartbeat
        self._source_factory = source_factory or (lambda: open_source(config.audio))
        self._commands = Commands()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._engine: VadEngine | None = None
        self._recording: OpenRecording | None = None
        self._levels = IdleLevels(config.audio)  # the mic's readings between recordings
        self._wake = threading.Event()  # a command (or stop) for an idle thread
        self._dozing = False  # the source was told to read several periods per wake-up
        self._carry: Frames | None = None  # the first block of a recording, read at its open
        self._source: AudioSource | None = None
        self._health = MicHealth(self._device_name(), post)
        self._stalled_since: float | None = None
        self._started_at = 0.0
        self._ended = False  # a finite source (WAV) has no more audio
        self.attempted = threading.Event()  # the first attempt to open the source is over

    # --- loop side ----------------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="audio-worker", daemon=True)
        self._thread.start()

    def open_recording(self, correlation_id: str, seq: int, guid: str) -> Future[Any]:
        return self._submit(Open(correlation_id, seq, guid))

    def close_recording(self, reason: str) -> Future[Any]:
        return self._submit(reason)

    def barrier(self) -> Future[Any]:
        """Done once every command sent before it is done (e.g. the last close)."""
        return self._submit(None)

    def stop(self, timeout_s: float = 3.0) -> bool:
        """Stop the thread (an open recording is closed with reason 'shutdown'); False if it
        did not end in time (stuck in a driver call)."""
        self._stop.set()
        self._wake.set()
        thread = self._thread
        if thread is None:
            return True
        thread.join(timeout_s)
        return not thread.is_alive()

    @property
    def mic(self) -> MicStatus:
        """The mic's status now (safe to read from any thread)."""
        return self._health.status

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _submit(self, what: Work) -> Future[Any]:
        if self._thread is not None and not self._thread.is_alive():  # stopped or crashed
            done: Future[Any] = Future()
            done.set_exception(RuntimeError("the audio worker has stopped"))
            return done
        done = self._commands.put(what)
        self._wake.set()
        return done

    # --- the thread ---------------------------------------------------------------------------

    def _run(self) -> None:
        name_native_thread("audio-worker")
        try:
            self._engine = make_engine(self._config.vad.engine, self._config.vad)
            while not self._stop.is_set():
                source = self._open_source()
                if source is None:
                    break
                self._capture(source)
        except Exception:
            log.exception("audio worker crashed")
            self._health.crashed()
        finally:
            self._finish_recording("shutdown")
            self._commands.drain()
            if self._source is not None:
                self._source.stop()
            self.attempted.set()

    def _beat(self) -> None:
        if self._heartbeat is None:
            return
        stalled = self._stalled_since
        if stalled is not None and time.monotonic() - stalled > STALL_RESTART_S:
            return  # see STALL_RESTART_S: let the watchdog restart us
        self._heartbeat.beat()

    def _open_source(self) -> AudioSource | None:
        """Open and start the source, retrying with back-off (beating the heartbeat)."""
        delays = backoff_delays(0.5, self._config.audio.reopen_backoff_max_s)
        while not self._stop.is_set():
            self._beat()
            try:
                source = self._source_factory()
                source.start()
            except Exception as exc:  # missing WAV, bad format, no ALSA: no mic, retry
                message = f"cannot open audio source: {exc}"
                if self._health.present or not self.attempted.is_set():
                    log.error("audio source unavailable", error=str(exc))
                self._lost(message)
                self.attempted.set()
                self._wait_commands(next(delays))
                continue
            self._source = source  # present once audio (or a loss) arrives: ALSA opens async
            self._dozing = False
            log.info("audio source started", device=self._device_name(), rate=source.format.rate)
            self._started_at = time.monotonic()
            return source
        return None

    def _wait_commands(self, seconds: float) -> None:
        """Wait without audio (back-off, ended source): keep beating, keep answering."""
        deadline = time.monotonic() + seconds
        while not self._stop.is_set() and (left := deadline - time.monotonic()) > 0:
            self._beat()
            self._handle_commands()
            self._stop.wait(min(left, READ_TIMEOUT_S))

    def _capture(self, source: AudioSource) -> None:
        self._ended = False
        while not self._stop.is_set():
            self._beat()
            self._handle_commands()
            if self._ended:
                self._stop.wait(READ_TIMEOUT_S)
                continue
            if self._recording is None:
                self._idle(source)
                continue
            if self._carry is not None:
                carried, self._carry = self._carry, None
                self._handle_item(carried)
                continue
            want = source.format.rate * self._config.encoding.chunk_ms // 1000
            item, pending = read_chunk(source, want, READ_TIMEOUT_S)
            if item is None and time.monotonic() - self._started_at > FIRST_AUDIO_WAIT_S:
                self.attempted.set()  # silent so far: let READY go out, the source says more
            self._handle_item(item)
            self._handle_item(pending)
            if item is not None:
                self.attempted.set()

    def _idle(self, source: AudioSource) -> None:
        """Between recordings: sleep until a command or the next metering, then meter all the
        audio queued meanwhile (before a command runs: an open records what comes after)."""
        if not self._dozing:
            self._dozing = True  # (told once per idle stretch; a no-op for other sources)
            if isinstance(source, IdleSource):
                source.set_idle(True)
        rate = source.format.rate
        self._wake.wait(self._levels.wait_s(rate) if self.attempted.is_set() else READ_TIMEOUT_S)
        self._wake.clear()
        items, _ = take_queued(source, max(1, round(IDLE_BATCH_S * rate)))
        self._take(items)
        if items or time.monotonic() - self._started_at > FIRST_AUDIO_WAIT_S:
            self.attempted.set()

    def _take(self, items: list[Frames | SourceEvent]) -> None:
        """Blocks read between recordings into the idle meter, events handled in order."""
        blocks: list[Frames] = []
        for item in items:
            if isinstance(item, Frames):
                self._stalled_since = None
                if not self._health.present:
                    self._health.back()
                blocks.append(item)
                continue
            self._meter(blocks)  # what came before the event, first
            blocks = []
            self._handle_item(item)
        self._meter(blocks)

    def _meter(self, blocks: list[Frames]) -> None:
        for meters in self._levels.measure(blocks):
            self._health.meters(meters, self._levels.constant_throughout)

    def _handle_item(self, item: Frames | SourceEvent | None) -> None:
        if isinstance(item, Frames):
            self._stalled_since = None
            if not self._health.present:
                self._health.back()
            self._process(item)
        elif item is None:
            return
        elif isinstance(item, Overrun):
            self._health.xrun()
            log.warning("audio overrun", lost_frames=item.lost_frames, cause=item.cause)
        elif isinstance(item, DeviceLost):
            if item.reason == "io-error" and "stalled" in item.message:
                log.error("capture stalled", stall_restart_s=STALL_RESTART_S)
                self._stalled_since = time.monotonic()
            self._lost(item.message)
        elif isinstance(item, DeviceBack):
            log.info("mic back", device=item.device, outage_s=round(item.outage_s, 2))
            self._health.back()
        elif isinstance(item, EndOfStream):
            log.warning("audio source ended", at_frame=item.at_frame)
            self._lost("the audio source ended (end of the WAV file)")
            self._ended = True

    def _lost(self, message: str) -> None:
        self._health.lost(message, announce=not self.attempted.is_set())

    def _device_name(self) -> str:
        audio = self._config.audio
        if audio.source == "wav":
            return f"wav:{audio.wav_path}"
        return audio.device if audio.source == "alsa" else "synthetic"

    # --- audio --------------------------------------------------------------------------------

    def _new_pipeline(self, fmt: Any, *, encode: bool) -> Pipeline:
        cfg = self._config
        return Pipeline(
            fmt, cfg.audio, cfg.vad, cfg.encoding, engine=self._engine, encode=encode, timed=False
        )

    def _process(self, frames: Frames) -> None:
        rec = self._recording
        if rec is not None:
            if rec.start_frame is None:
                rec.start_frame = frames.start_frame
                log.info(
                    "recording audio first frame",
                    recording_id=rec.writer.recording_id,
                    start_frame=frames.start_frame,
                )
            rec.end_frame = frames.start_frame + frames.count
            result = rec.pipeline.process(frames)
            rec.store(result.encoded)
            meters = result.meters
            if meters is not None:  # constant since the open: the run began before it
                run = round(meters.silence_run_s * frames.format.rate)
                self._health.meters(meters, run >= rec.end_frame - rec.start_frame)
            self._health.vad(result.vad)
        else:  # a block read while idle by the recording loop (the open just closed)
            self._meter([frames])

    # --- commands -----------------------------------------------------------------------------

    def _handle_commands(self) -> None:
        self._commands.run_pending(self._execute)

    def _execute(self, what: Work) -> Any:
        if isinstance(what, Open):
            return self._begin(what)
        return None if what is None else self._finish_recording(what)

    def _begin(self, what: Open) -> str:
        self._finish_recording("superseded")  # never two writers at once
        source = self._source
        if source is None:
            raise RuntimeError("no audio source")
        try:
            writer = self._spool.begin_recording(
                what.correlation_id,
                what.seq,
                what.guid,
                codec=self._config.encoding.codec,
                sample_rate=OUTPUT_RATE,
            )
        except (SpoolRefused, SpoolFull):
            self._post(ev.SpoolFull(hard=True))
            raise
        except (SpoolError, OSError) as exc:
            self._post(ev.StorageFault(storage_reason(exc)))
            raise
        self._resume(source)
        pipeline = self._new_pipeline(source.format, encode=True)
        self._recording = OpenRecording(writer, pipeline, self._post)
        self._levels.reset()  # a fresh silence run after the recording, as before #24
        log.info("recording audio opened", recording_id=writer.recording_id, seq=what.seq)
        return writer.recording_id

    def _resume(self, source: AudioSource) -> None:
        """Wake a dozing source; meter the blocks it captured before the open, keep the first
        one captured since (where the recording starts)."""
        if not self._dozing or not isinstance(source, IdleSource):
            return
        self._dozing = False
        edge = source.resume(RESUME_WAIT_S)
        if edge is None:  # no audio (an outage): the recording takes what comes
            return
        limit = round(10 * IDLE_BATCH_S * source.format.rate)
        items, self._carry = take_queued(source, limit, start_at=edge)
        self._take(items)

    def _finish_recording(self, reason: str) -> int | None:
        """Flush the pipeline into the writer and close it; returns the length in bytes."""
        carried, self._carry = self._carry, None  # closed before its first block was read
        if carried is not None and self._recording is not None:
            self._handle_item(carried)
        rec, self._recording = self._recording, None
        return None if rec is None else rec.close(reason)
