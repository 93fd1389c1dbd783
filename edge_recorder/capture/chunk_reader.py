"""Read a source one encoder chunk at a time: one wake-up of the capture thread per chunk.

The pipeline's output does not depend on block sizes and the encoder only emits at
`encoding.chunk_ms` boundaries, so handing it a chunk's worth of contiguous periods at once
adds no latency but runs the per-block Python work (and the thread's wake-up) once per chunk
instead of once per ALSA period. A source that can wait for several periods itself
(`ChunkSource.read_upto`, e.g. the paced WAV source: one timer wait and one file read per
chunk) does; any other source is read period by period and the blocks are merged here.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from edge_recorder.audio.frames import AudioSource, Frames, SourceEvent, concat_frames


@runtime_checkable
class ChunkSource(Protocol):
    def read_upto(self, frames: int, timeout: float | None = None) -> Frames | SourceEvent | None:
        """The whole periods covering `frames` frames as one block, once all are captured (or
        those captured when `timeout` ran out), an event, or None if nothing came in time."""
        ...


Item = Frames | SourceEvent | None


def read_chunk(source: AudioSource, want: int, timeout: float) -> tuple[Item, Item]:
    """The next chunk of about `want` frames (or an event / None) plus, for period-by-period
    sources, whatever ended the run early (an event, a gap, a format change, or None).

    Every wait allows for the audio still to come plus `timeout`: a shorter one (0.1 s against
    a 120 ms period) woke the capture thread twice per period, once for nothing (issue #24)."""
    wait = timeout + want / source.format.rate
    read_upto = getattr(source, "read_upto", None)  # (isinstance on a Protocol is slow)
    if read_upto is not None:
        item: Item = read_upto(want, wait)
        return item, None
    first = source.read(wait)
    if not isinstance(first, Frames):
        return first, None
    blocks, frames = [first], first.count
    while frames < want:
        nxt = source.read((want - frames) / first.format.rate + timeout)
        if not (
            isinstance(nxt, Frames)
            and nxt.format == first.format
            and nxt.start_frame == first.start_frame + frames
        ):  # an event, a gap, a timeout: process what we have first
            return concat_frames(blocks), nxt
        blocks.append(nxt)
        frames += nxt.count
    return concat_frames(blocks), None
