"""A power cut can stop a segment file at ANY byte: whatever the cut, the spool opens, keeps
every whole record before it, and cuts the rest (property-based, any cut position)."""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from edge_recorder.spool.records import RECORD_OVERHEAD, SEGMENT_HEADER_BYTES
from tests.unit.spool.helpers import crash, new_id, open_spool, spool_config


@settings(max_examples=40, deadline=None)
@given(
    sizes=st.lists(st.integers(1, 700), min_size=1, max_size=12),
    cut=st.floats(0, 1),
    junk=st.binary(max_size=80),
)
def test_any_cut_of_the_last_segment_keeps_every_whole_record(
    sizes: list[int], cut: float, junk: bytes
) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="spool-torn-"))
    try:
        config = spool_config(tmp, segment_bytes=1500)
        spool = open_spool(config)
        w = spool.begin_recording("A", 1, new_id(), codec="pcm16", sample_rate=16000)
        data = os.urandom(sum(sizes))
        pos = 0
        for size in sizes:
            w.append(data[pos : pos + size])
            pos += size
        crash(spool)
        last = sorted((config.dir / "segments").glob(f"{uuid.UUID(w.recording_id).hex}-*"))[-1]
        base = int(last.name.split("-")[1].removesuffix(".seg"), 16)
        raw = last.read_bytes()
        keep = int(cut * len(raw))
        last.write_bytes(raw[:keep] + junk)
        # What survives in the cut file: whole records that end at or before `keep`.
        survived, position, offset = base, SEGMENT_HEADER_BYTES, base
        for size in _sizes_in_segment(sizes, base):
            position += size + RECORD_OVERHEAD
            offset += size
            if position <= keep:
                survived = offset
        with open_spool(config) as reopened:
            [info] = reopened.recovered_open_recordings()
            assert info.quarantine is None
            assert info.length == survived
            assert reopened.read(info.id, 0, len(data)) == data[:survived]
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _sizes_in_segment(sizes: list[int], base: int) -> list[int]:
    """The append sizes whose records live in the segment starting at `base`."""
    offset, out = 0, []
    for size in sizes:
        if offset >= base:
            out.append(size)
        offset += size
    return out
