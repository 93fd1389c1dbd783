"""read_chunk: a source that waits for a whole chunk itself is asked once per chunk; any other
source is read period by period and merged, stopping at whatever breaks the run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile

from edge_recorder.audio.frames import AudioFormat, EndOfStream, Frames, SourceEvent
from edge_recorder.capture.chunk_reader import ChunkSource, read_chunk
from edge_recorder.capture.wav import WavSource

FMT = AudioFormat(16000, 1, "S16_LE")


class Periods:
    """A period-by-period source (no read_upto) over scripted items."""

    def __init__(self, items: list[Frames | SourceEvent]) -> None:
        self.items = items
        self.reads = 0
        self.timeouts: list[float | None] = []

    @property
    def format(self) -> AudioFormat:
        return FMT

    def start(self) -> None:
        pass

    def read(self, timeout: float | None = None) -> Frames | SourceEvent | None:
        self.reads += 1
        self.timeouts.append(timeout)
        return self.items.pop(0) if self.items else None

    def stop(self) -> None:
        pass


def block(start: int, count: int = 320) -> Frames:
    return Frames(bytes(2 * count), FMT, start)


def test_a_wav_source_is_asked_once_per_chunk(tmp_path: Path) -> None:
    path = tmp_path / "in.wav"
    soundfile.write(path, np.zeros(4000), 16000, subtype="PCM_16")
    source = WavSource(path, speed=0, period_ms=20)
    assert isinstance(source, ChunkSource)
    source.start()
    items = [read_chunk(source, 1600, 0.1) for _ in range(4)]
    counts = [item.count for item, _ in items if isinstance(item, Frames)]
    assert counts == [1600, 1600, 800]
    assert isinstance(items[-1][0], EndOfStream) and all(p is None for _, p in items)


def test_periods_are_merged_until_a_chunk_or_a_break() -> None:
    end = EndOfStream(at_frame=9 * 320)
    source = Periods([*(block(i * 320) for i in range(7)), block(8 * 320), end])
    assert not isinstance(source, ChunkSource)
    first, pending = read_chunk(source, 1600, 0.1)
    assert isinstance(first, Frames) and (first.start_frame, first.count) == (0, 1600)
    assert pending is None and source.reads == 5
    second, gap = read_chunk(source, 1600, 0.1)  # 2 periods, then a gap at frame 8*320
    assert isinstance(second, Frames) and (second.start_frame, second.count) == (1600, 640)
    assert isinstance(gap, Frames) and gap.start_frame == 8 * 320
    assert read_chunk(source, 1600, 0.1) == (end, None)
    assert read_chunk(source, 1600, 0.1) == (None, None)


def test_the_first_read_waits_for_the_chunk_not_just_the_timeout() -> None:
    """A 0.1 s wait against 120 ms of audio woke the capture thread twice per chunk, once for
    nothing (issue #24): every wait allows for the audio still to come."""
    source = Periods([block(0, 1920)])  # one 120 ms period is the whole chunk
    item, pending = read_chunk(source, 1920, 0.1)
    assert isinstance(item, Frames) and item.count == 1920 and pending is None
    assert source.timeouts == [pytest.approx(0.1 + 1920 / 16000)]
