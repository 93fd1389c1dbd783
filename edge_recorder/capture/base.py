"""Choosing a capture source, and the small pure pieces every source shares.

`open_source(config.audio)` is the only thing the pipeline needs. The helpers below hold the
logic that must be right and is easy to test without hardware: format validation (an unknown
ALSA format constant aborts libasound, so nothing reaches `alsaaudio.PCM` unchecked), the
re-open back-off schedule, the mapping from ALSA errors to a typed reason, timeline arithmetic
for gaps, and the bounded hand-over queue that never blocks the capture thread.
"""

from __future__ import annotations

import errno
import os
import queue
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal, get_args

from edge_recorder.audio.frames import (
    AudioFormat,
    Frames,
    Overrun,
    SampleFormat,
    SourceEvent,
)

CAPTURE_RATES = (8000, 48000)  # inclusive bounds for live capture
CAPTURE_CHANNELS = (1, 8)
LossReason = Literal["missing", "busy", "unplugged", "io-error"]


class CaptureFormatError(ValueError):
    """The requested capture format cannot be used; raised before any device is opened."""


def validate_capture_format(sample_format: str, rate: int, channels: int) -> AudioFormat:
    """Check a format before it gets near libasound; return it as an AudioFormat."""
    allowed = get_args(SampleFormat)
    if sample_format not in allowed:
        raise CaptureFormatError(
            f"sample format {sample_format!r} is not supported (use one of {', '.join(allowed)})"
        )
    low, high = CAPTURE_RATES
    if not isinstance(rate, int) or not low <= rate <= high:
        raise CaptureFormatError(f"rate {rate!r} Hz is outside {low}-{high} Hz")
    low, high = CAPTURE_CHANNELS
    if not isinstance(channels, int) or not low <= channels <= high:
        raise CaptureFormatError(f"channel count {channels!r} is outside {low}-{high}")
    fmt: SampleFormat = sample_format  # type: ignore[assignment]  # checked just above
    return AudioFormat(rate=rate, channels=channels, sample_format=fmt)


def period_frames(rate: int, period_ms: int) -> int:
    """Frames in one period (at least one)."""
    return max(1, rate * period_ms // 1000)


_INDEXED_DEVICE = re.compile(r"^(plug)?hw:(CARD=)?\d+\b|^(plug)?hw:\d")


def uses_card_index(device: str) -> bool:
    """True for names like `hw:1,0` or `plughw:CARD=1`: indexes change across reboots."""
    return bool(_INDEXED_DEVICE.search(device))


def card_name_of(device: str) -> str | None:
    """The `CARD=<name>` part of a PCM name, if it has one."""
    match = re.search(r"CARD=([^,\s]+)", device)
    return match.group(1) if match else None


def backoff_delays(initial_s: float, maximum_s: float, factor: float = 2.0) -> Iterator[float]:
    """Endless re-open delays: initial, doubled each time, capped at `maximum_s`."""
    delay = min(initial_s, maximum_s)
    while True:
        yield delay
        delay = min(delay * factor, maximum_s)


_REASON_BY_ERRNO: dict[int, LossReason] = {
    errno.ENOENT: "missing",
    errno.EBUSY: "busy",
    errno.ENODEV: "unplugged",
    errno.ENXIO: "unplugged",
    errno.EIO: "io-error",
}


def classify_alsa_error(message: str) -> LossReason:
    """Map an `ALSAAudioError` text (`'<strerror> [<device>]'`) to a DeviceLost reason.

    pyalsaaudio only gives the message, built from `snd_strerror`, i.e. the C library's
    `strerror` (untranslated: Python leaves LC_MESSAGES at "C").
    """
    text = message.split(" [", 1)[0].strip().lower()
    for code, reason in _REASON_BY_ERRNO.items():
        if text == os.strerror(code).lower():
            return reason
    return "io-error"


def explain_loss(reason: LossReason, device: str, holders: list[str] | None = None) -> str:
    """A message an installer can act on, naming the cause."""
    if reason == "busy":
        who = f" (held by {', '.join(holders)})" if holders else ""
        return (
            f"{device} is busy: another process holds the microphone{who}; stop it, or share "
            "the mic through a dsnoop PCM (hardware/alsa/dsnoop.conf)"
        )
    if reason == "missing":
        return f"{device} not found: is the mic plugged in and the card name right? (run devices)"
    if reason == "unplugged":
        return f"{device} disappeared (unplugged or USB reset)"
    return f"{device} input/output error (failing cable, power or driver)"


def gap_frames(last_end_t: float, next_start_t: float, rate: int) -> int:
    """Frames that fit between the end of the last block and the start of the next one.

    Both times come from one clock (the PCM's monotonic timestamps, or time.monotonic());
    rounding to whole frames keeps the timeline integral, negatives (clock jitter) are 0.
    """
    return max(0, round((next_start_t - last_end_t) * rate))


@dataclass
class CaptureStats:
    """Counters a source keeps for status and for `record`'s summary."""

    frames: int = 0  # frames delivered to the queue
    overruns: int = 0
    overrun_lost_frames: int = 0
    outages: int = 0
    outage_lost_frames: int = 0
    dropped_frames: int = 0  # dropped because the consumer stalled
    failed_opens: int = 0  # open attempts that failed (missing, busy, ...)
    last_error: str = ""


class Handoff:
    """Bounded queue from the capture thread to the consumer; `put_frames` never blocks.

    When `max_blocks` blocks wait unread, a new block is dropped and counted; the next block
    that fits carries the dropped frames in `lost_before`, preceded by an
    `Overrun(cause="consumer")`, so the gap is visible and the timeline stays exact. Events are
    always queued: they are rare and must not be lost.

    One producer (the capture thread) and one consumer. Built on `queue.SimpleQueue` (its put
    and timed get are C code): a `threading.Condition` ran a few dozen lines of Python on each
    side of every period's hand-over, on a cold cache (issue #24). The unread count is two
    counters, each written by one side only, so no lock is needed to keep it.
    """

    def __init__(self, max_blocks: int) -> None:
        self.max_blocks = max_blocks
        self._queue: queue.SimpleQueue[Frames | SourceEvent | None] = queue.SimpleQueue()
        self._put = 0  # blocks queued (the producer's count)
        self._got = 0  # blocks taken (the consumer's count)
        self._pending_lost = 0
        self.dropped_frames = 0

    def put_frames(self, frames: Frames) -> bool:
        if self._put - self._got >= self.max_blocks:
            self._pending_lost += frames.count + frames.lost_before
            self.dropped_frames += frames.count
            return False
        if self._pending_lost:
            lost = self._pending_lost + frames.lost_before
            self._queue.put(Overrun(frames.start_frame, self._pending_lost, cause="consumer"))
            frames = Frames(frames.data, frames.format, frames.start_frame, lost)
            self._pending_lost = 0
        self._put += 1
        self._queue.put(frames)
        return True

    def flush_pending(self, at_frame: int) -> None:
        """Report drops no later block will carry (the stream is ending)."""
        if self._pending_lost:
            self._queue.put(Overrun(at_frame, self._pending_lost, cause="consumer"))
            self._pending_lost = 0

    def put_event(self, event: SourceEvent) -> None:
        self._queue.put(event)

    def get(self, timeout: float | None) -> Frames | SourceEvent | None:
        """The next item, or None after `timeout` (or when `wake` was called)."""
        try:
            item = self._queue.get(timeout=timeout)
        except queue.Empty:
            return None
        if isinstance(item, Frames):
            self._got += 1
        return item

    def wake(self) -> None:
        """Wake a waiting consumer: its `get` returns None (used on stop)."""
        self._queue.put(None)


class Pacer:
    """Releases block k of a simulated source at `t0 + (k + 1) * block_s / speed`.

    Speed 0 releases everything at once. Waiting uses an Event so `stop()` interrupts it.
    """

    def __init__(self, block_s: float, speed: float) -> None:
        self.block_s = block_s
        self.speed = speed
        self._t0: float | None = None
        self._stopped = threading.Event()

    def start(self) -> None:
        self._t0 = time.monotonic()
        self._stopped.clear()

    def stop(self) -> None:
        self._stopped.set()

    @property
    def stopped(self) -> bool:
        return self._stopped.is_set()

    def wait_for_block(self, index: int, timeout: float | None) -> bool:
        """True when block `index` is due (waiting up to `timeout` seconds for it)."""
        if self._stopped.is_set():
            return False
        if self.speed == 0:
            return True
        if self._t0 is None:
            self.start()
        assert self._t0 is not None
        due = self._t0 + (index + 1) * self.block_s / self.speed
        wait = due - time.monotonic()
        if wait <= 0:
            return True
        if timeout is not None and timeout < wait:
            self._stopped.wait(timeout)
            return False
        self._stopped.wait(wait)
        return not self._stopped.is_set()
