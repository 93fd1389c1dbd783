"""Live capture from an ALSA PCM through pyalsaaudio, on a thread that only reads.

Why it is shaped like this:
- The read thread does nothing but `pcm.read()` and hand the bytes to a bounded queue; any
  work there turns into overruns ("lagging audio, underrun and overrun" in every Pi voice
  project). If the consumer stalls, blocks are dropped and counted, never blocking the read.
- Devices are opened by name (`plughw:CARD=<id>,DEV=0`), so a re-open finds the array
  whatever card number it got after a replug.
- Missing, busy, unplugged and failing devices become one typed `DeviceLost` event, then the
  thread re-opens with exponential back-off; the first block after it comes back is preceded
  by `DeviceBack` with the outage.
- Timeline: `start_frame` counts frames since `start()`, lost ones included. Frames read are
  counted exactly; a gap (overrun, outage) is measured on the PCM's own clock: after each
  read, `snd_pcm_htimestamp` gives the CLOCK_MONOTONIC time of the newest captured frame and
  how many frames (`avail`) were captured but not read yet, so the last frame we read ended
  at `tstamp - avail/rate`. The lost frames are the time between the end of the last block
  before the gap and the start of the first block after it, times the rate
  (`base.gap_frames`). Without usable PCM timestamps, time.monotonic() stands in.
- Between recordings (`set_idle(True)`, issue #24) nobody needs a block the moment it is
  captured: after a read that had to wait for its period (the thread is at the capture edge)
  the thread sleeps for half the ALSA buffer, then reads the periods captured meanwhile back
  to back: two wake-ups per five periods instead of five, the other half of the buffer left
  as margin. `resume()` ends that at once and says where live capture picks up again, so a
  recording still starts with the block being captured when it opened.
"""

from __future__ import annotations

import errno
import math
import threading
import time
from pathlib import Path

from edge_recorder.audio.frames import (
    AudioFormat,
    DeviceBack,
    DeviceLost,
    EndOfStream,
    Frames,
    Overrun,
    SourceEvent,
)
from edge_recorder.capture.alsa_pcm import AlsaPcm, DeviceError, Pcm, PcmOpener
from edge_recorder.capture.base import (
    CaptureFormatError,
    CaptureStats,
    Handoff,
    LossReason,
    backoff_delays,
    card_name_of,
    explain_loss,
    gap_frames,
    period_frames,
    uses_card_index,
    validate_capture_format,
)
from edge_recorder.config.model import AudioConfig
from edge_recorder.support.logs import get_logger
from edge_recorder.support.threads import name_native_thread

log = get_logger(__name__)

DEFAULT_QUEUE_S = 10.0  # audio the consumer may fall behind before blocks are dropped
DEFAULT_BACKOFF_INITIAL_S = 0.5
DEFAULT_STALL_S = 1.0  # no read returning for this long = the device stalled (alarm < 2 s)
_CLOCK_SANITY_S = 5.0  # PCM timestamps further than this from time.monotonic() are ignored


def busy_holders(device: str, proc: Path = Path("/proc")) -> list[str]:
    """Processes holding the card's capture PCMs, from /proc/asound (`name[pid]`)."""
    card = card_name_of(device)
    if card is None:
        return []
    found: list[str] = []
    for status in sorted((proc / "asound" / card).glob("pcm*c/sub*/status")):
        try:
            text = status.read_text()
        except OSError:
            continue
        for line in text.splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "owner_pid" and value.strip().isdigit():
                pid = value.strip()
                try:
                    name = (proc / pid / "comm").read_text().strip()
                except OSError:
                    name = "?"
                found.append(f"{name}[{pid}]")
    return found


class AlsaSource:
    """Capture from a named ALSA PCM; see the module docstring for the guarantees."""

    def __init__(
        self,
        device: str,
        fmt: AudioFormat,
        *,
        period_ms: int = 20,
        buffer_periods: int = 8,
        backoff_max_s: float = 10.0,
        backoff_initial_s: float = DEFAULT_BACKOFF_INITIAL_S,
        queue_s: float = DEFAULT_QUEUE_S,
        max_frames: int | None = None,
        stall_s: float = DEFAULT_STALL_S,
        opener: PcmOpener | None = None,
    ) -> None:
        self._format = validate_capture_format(fmt.sample_format, fmt.rate, fmt.channels)
        self.device = device
        self.period = period_frames(fmt.rate, period_ms)
        self.buffer_periods = buffer_periods
        self._backoff = (backoff_initial_s, backoff_max_s)
        self._opener: PcmOpener = opener or AlsaPcm
        self._handoff = Handoff(max_blocks=max(4, math.ceil(queue_s * 1000 / period_ms)))
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.max_frames = max_frames  # stop reading (EndOfStream) once this many are captured
        self._stall_s = stall_s
        self._activity = time.monotonic()  # last time a read returned (set by the thread)
        self._stalled = threading.Event()  # a stall was reported; cleared when audio resumes
        self._quiet_ok = True  # in a reported outage or finished: silence is expected
        # idle dozing (see the module docstring): periods to sleep after a read at the edge
        self._doze_periods = 0
        self._poke = threading.Event()  # ends a doze (resume, stop)
        self._edge = threading.Event()  # set once a read at the edge follows a resume()
        self._want_edge = False
        self._edge_frame = 0
        self._edge_s = self.period / fmt.rate / 8  # a read that waited this long was at the edge
        self.stats = CaptureStats()
        if uses_card_index(device):
            log.warning("alsa device uses a card index; use CARD=<name>", device=device)

    @classmethod
    def from_config(cls, audio: AudioConfig) -> AlsaSource:
        fmt = validate_capture_format(audio.format, audio.rate, audio.channels)
        return cls(
            audio.device,
            fmt,
            period_ms=audio.period_ms,
            buffer_periods=audio.buffer_periods,
            backoff_max_s=audio.reopen_backoff_max_s,
        )

    @property
    def format(self) -> AudioFormat:
        return self._format

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("source already started")
        self._thread = threading.Thread(
            target=self._run, args=(time.monotonic(),), name="alsa-capture", daemon=True
        )
        self._thread.start()

    def read(self, timeout: float | None = None) -> Frames | SourceEvent | None:
        """The next block or event; also reports a stalled device (a read that never returns
        raises no error, so the consumer side watches for it)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            wait = self._stall_s / 2
            if deadline is not None:
                wait = max(0.0, min(wait, deadline - time.monotonic()))
            item = self._handoff.get(wait)
            if item is not None:
                return item
            stall = self._check_stall()
            if stall is not None:
                return stall
            if self._stop.is_set() or (deadline is not None and time.monotonic() >= deadline):
                return None

    def set_idle(self, idle: bool) -> None:
        """Idle: read several periods per wake-up (see the module docstring); not idle: read
        period by period again (as `resume` does, without waiting)."""
        if not idle:
            self._doze_periods = 0
            self._poke.set()
            return
        doze = self.buffer_periods // 2 if self.buffer_periods >= 4 else 0
        period_s = self.period / self._format.rate
        self._doze_periods = max(0, min(doze, int(self._stall_s / 2 / period_s)))
        if not self._stop.is_set():
            self._poke.clear()

    def resume(self, timeout: float) -> int | None:
        """Back to a read per period; returns the start frame of the first block read at the
        capture edge from now on (the block being captured now: everything before it was
        captured earlier), waiting up to `timeout` for it; None if it did not come in time."""
        self._edge.clear()
        self._want_edge = True
        self.set_idle(False)
        if not self._edge.wait(timeout):
            self._want_edge = False
            return None
        return self._edge_frame

    def _check_stall(self) -> DeviceLost | None:
        if self._thread is None or self._quiet_ok or self._stalled.is_set():
            return None
        quiet = time.monotonic() - self._activity
        if quiet < self._stall_s:
            return None
        self._stalled.set()
        message = f"{self.device} delivered no audio for {quiet:.1f} s (device stalled)"
        self.stats.last_error = message
        log.warning("mic stalled", device=self.device, quiet_s=round(quiet, 2))
        return DeviceLost(self.device, "io-error", message)

    def stop(self) -> None:
        self._stop.set()
        self._poke.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            # A blocking read returns within one period; allow a generous margin.
            thread.join(timeout=2.0 + 4 * self.period / self._format.rate)
            if thread.is_alive():
                log.warning("capture thread did not stop in time", device=self.device)
        self._handoff.wake()

    # --- the capture thread ------------------------------------------------------------------

    def _emit(self, event: SourceEvent) -> None:
        self._handoff.put_event(event)

    def _lost(self, current: DeviceLost | None, err: DeviceError) -> DeviceLost:
        """Report a loss (again only when the reason changed) and return the current one."""
        self.stats.last_error = str(err)
        self._quiet_ok = True
        if current is not None and (
            current.reason == err.reason or (current.reason, err.reason) == ("unplugged", "missing")
        ):
            return current  # the same outage (an unplugged device is then missing)
        holders = busy_holders(self.device) if err.reason == "busy" else []
        event = DeviceLost(self.device, err.reason, explain_loss(err.reason, self.device, holders))
        log.warning("mic lost", device=self.device, reason=err.reason, detail=event.message)
        self._emit(event)
        return event

    def _block_end(self, pcm: Pcm) -> float:
        """Monotonic time at which the last frame just read was captured."""
        now = time.monotonic()
        try:
            stamp, avail = pcm.timestamp()
        except Exception:  # a timestamp is a nicety; never let it stop capture
            stamp, avail = None, 0
        if stamp is None or abs(stamp - now) > _CLOCK_SANITY_S:
            stamp = now
        return stamp - avail / self._format.rate

    def _run(self, started_at: float) -> None:
        name_native_thread("alsa-capture")
        fmt, rate = self._format, self._format.rate
        delays = backoff_delays(*self._backoff)
        pcm: Pcm | None = None
        lost: DeviceLost | None = None
        overrun_pending = False
        gap = False
        last_end_t = started_at
        next_frame = 0
        try:
            while not self._stop.is_set():
                if self.max_frames is not None and next_frame >= self.max_frames:
                    self._handoff.flush_pending(next_frame)
                    self._emit(EndOfStream(at_frame=next_frame))
                    break
                if pcm is None:
                    try:
                        pcm = self._opener(self.device, fmt, self.period, self.buffer_periods)
                        self._activity, self._quiet_ok = time.monotonic(), False
                    except DeviceError as err:
                        # libasound answers ENODEV for an unknown CARD= name: not found
                        why: LossReason = "missing" if err.reason == "unplugged" else err.reason
                        lost = self._lost(lost, DeviceError(why, str(err)))
                        gap = True
                        self.stats.failed_opens += 1
                        self._stop.wait(next(delays))
                        continue
                    except CaptureFormatError as err:
                        lost = self._lost(lost, DeviceError("io-error", str(err)))
                        gap = True
                        self._stop.wait(next(delays))
                        continue
                asked = time.monotonic()
                try:
                    count, data = pcm.read()
                    self._activity = time.monotonic()
                except DeviceError as err:
                    self._close(pcm)
                    pcm = None
                    reason: LossReason = "unplugged" if err.reason == "missing" else err.reason
                    lost = self._lost(lost, DeviceError(reason, str(err)))
                    gap = True
                    self._stop.wait(next(delays))
                    continue
                if count == -errno.EPIPE:
                    self.stats.overruns += 1
                    overrun_pending = gap = True
                    pcm.drop()
                    continue
                count = min(count, len(data) // fmt.frame_bytes)
                if count <= 0:
                    continue
                if self._stalled.is_set() and lost is None:  # reported by read(): an outage
                    lost = DeviceLost(self.device, "io-error", "stalled")
                    gap = True
                end_t = self._block_end(pcm)
                missing = gap_frames(last_end_t, end_t - count / rate, rate) if gap else 0
                start = next_frame + missing
                if self.max_frames is not None:  # keep exactly max_frames on the timeline
                    count = max(0, min(count, self.max_frames - start))
                if lost is not None:
                    self.stats.outages += 1
                    self.stats.outage_lost_frames += missing
                    log.info("mic back", device=self.device, outage_s=round(missing / rate, 3))
                    self._emit(DeviceBack(self.device, outage_s=missing / rate))
                    lost, delays = None, backoff_delays(*self._backoff)
                    self._stalled.clear()
                elif overrun_pending:
                    self.stats.overrun_lost_frames += missing
                    log.warning("capture overrun", device=self.device, lost_frames=missing)
                    self._emit(Overrun(at_frame=start, lost_frames=missing))
                overrun_pending = gap = False
                block = Frames(data[: count * fmt.frame_bytes], fmt, start, missing)
                at_edge = self._activity - asked >= self._edge_s
                if at_edge and self._want_edge:
                    self._want_edge = False
                    self._edge_frame = start
                    self._edge.set()
                if count and self._handoff.put_frames(block):
                    self.stats.frames += count
                self.stats.dropped_frames = self._handoff.dropped_frames
                next_frame, last_end_t = start + count, end_t
                if self.max_frames is not None:  # a gap may run past the end
                    next_frame = min(next_frame, self.max_frames)
                if at_edge and self._doze_periods:
                    self._poke.wait(self._doze_periods * self.period / rate)
        finally:
            self._quiet_ok = True
            if pcm is not None:
                self._close(pcm)

    def _close(self, pcm: Pcm) -> None:
        try:
            pcm.close()
        except Exception as exc:  # closing a vanished device may fail; it is gone either way
            log.info("closing pcm failed", device=self.device, error=str(exc))
