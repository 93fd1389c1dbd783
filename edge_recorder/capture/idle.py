"""The capture thread between recordings ("idle means idle", issue #24): the pieces it uses.

Between encounters nothing needs VAD, resampling or encoding, and nobody needs a block the
moment it is captured. The thread sleeps until a command arrives or IDLE_WAIT_S passes, takes
every block the source queued meanwhile (`take_queued`) and meters them in one pass on the raw
frames (`IdleLevels`: level, peak, clipping, digital silence). A source that can read several
periods per wake-up (`IdleSource`, the ALSA source) is told so, and at an open it is resumed
first: the blocks it captured before the open are metered, the recording starts with the block
being captured when it opened.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from edge_recorder.audio.dsp import Meters
from edge_recorder.audio.frames import AudioSource, EndOfStream, Frames, SourceEvent
from edge_recorder.audio.levels import IdleMeter
from edge_recorder.config.model import AudioConfig

IDLE_WAIT_S = 0.5  # between recordings: how often queued audio is metered (and the beat)
IDLE_BATCH_S = 2.0  # at most this much audio per idle pass (a source that never runs dry)
IDLE_MIN_WAIT_S = 0.02  # shortest idle sleep (when a silence run is about to raise the alarm)
RESUME_WAIT_S = 0.5  # an open waits this long at most for a dozing source to catch up


@runtime_checkable
class IdleSource(Protocol):
    """A source that reads several periods per wake-up between recordings (AlsaSource)."""

    def set_idle(self, idle: bool) -> None: ...

    def resume(self, timeout: float) -> int | None: ...


def take_queued(
    source: AudioSource, max_frames: int, start_at: int | None = None
) -> tuple[list[Frames | SourceEvent], Frames | None]:
    """What the source has queued now, without waiting (about `max_frames` frames at most), in
    order. With `start_at`, the first block that starts at or after that frame ends the take and
    is returned apart (the first block of a recording)."""
    items: list[Frames | SourceEvent] = []
    got = 0
    while got < max_frames:
        item = source.read(0)
        if item is None:
            break
        if isinstance(item, Frames):
            if start_at is not None and item.start_frame >= start_at:
                return items, item
            got += item.count
        items.append(item)
        if isinstance(item, EndOfStream):  # a finite source repeats it: nothing comes after
            break
    return items, None


class IdleLevels:
    """The idle meter for the format the blocks come in, and when to wake for the alarm."""

    def __init__(self, audio: AudioConfig) -> None:
        self._audio = audio
        self._meter: IdleMeter | None = None

    def reset(self) -> None:
        """A fresh silence run (after a recording, as the meter pipeline did before #24)."""
        self._meter = None

    @property
    def constant_throughout(self) -> bool:
        """No change in the input since the last reset (see AudioWorker._observe_meters)."""
        return self._meter is not None and self._meter.constant_throughout

    def measure(self, blocks: list[Frames]) -> list[Meters]:
        """Readings for the blocks: one per run of one format (a source keeps its format)."""
        out: list[Meters] = []
        start = 0
        for i in range(1, len(blocks) + 1):
            if i == len(blocks) or blocks[i].format != blocks[start].format:
                fmt = blocks[start].format
                if self._meter is None or self._meter.format != fmt:
                    self._meter = IdleMeter(self._audio, fmt)
                meters = self._meter.measure(blocks[start:i])
                out.extend([meters] if meters is not None else [])
                start = i
        return out

    def wait_s(self, rate: int) -> float:
        """How long the idle thread may sleep: IDLE_WAIT_S, but never past the moment a
        constant run reaches `audio.digital_silence_s` (the alarm keeps its timing), and
        never longer than that threshold (so a run is seen before it is due)."""
        wait = min(IDLE_WAIT_S, self._audio.digital_silence_s)
        due = self._meter.frames_to_silence() if self._meter is not None else None
        if due is not None:
            wait = min(wait, max(IDLE_MIN_WAIT_S, due / rate))
        return wait
