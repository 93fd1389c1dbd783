"""A backlog's ledger stays small in memory (issue #24: drain memory bounded whatever the
backlog). Measured with tracemalloc, which counts Python's own allocations: the same objects
give the same bytes on every run, so the bounds are deterministic, not timing-dependent.

Each recording here is one encounter's only recording, closed, as a backlog of 10 s visits
holds them. What one such recording needs in memory, from its parts (CPython 3.11, 64-bit):
the recording and encounter entries as slotted dataclasses with their two retry states
(~0.45 kB), their strings (recording id, correlation id, ref, sealed id: ~0.35 kB), the
ledger's dict slots, the by-encounter index and Identities' key and seal maps (~0.4 kB):
1.2 kB measured. The bound is 2 kB: headroom for another CPython's dict sizing, while the
pydantic models that held the same entries before (a `__dict__` and a fields-set per model)
kept 3.9 kB a recording, measured the same way, and fail it.

Loading holds more than it keeps for a moment (the file's bytes: ~0.65 kB a recording, and
the parse), 1.7 kB a recording measured; the bound is 3 kB. Before, the on-disk form was
copied whole into the in-memory form, so every entry was held twice over plus the text: 6.4 kB.
The cyclic collector is paused while measuring, so a collection's timing cannot move the peak.
"""

from __future__ import annotations

import gc
import tracemalloc
import uuid
from pathlib import Path

from edge_recorder.spool.fileops import CountingFileOps
from edge_recorder.spool.identity import Identities
from edge_recorder.spool.journal import commit_ledger, load_state
from edge_recorder.spool.ledger import EncounterEntry, LedgerData, RecordingEntry

KEY = bytes(range(32))
SMALL, LARGE = 200, 600  # the per-recording cost is the difference: fixed costs cancel out
KEPT_PER_RECORDING = 2048  # bytes; see the module docstring
PEAK_PER_RECORDING = 3072  # bytes; see the module docstring


def _write_backlog(directory: Path, count: int) -> None:
    """A ledger of `count` closed, undelivered recordings, saved as the spool saves it."""
    ledger = LedgerData(key_id="k")
    for n in range(count):
        cid = f"backlog-{n:05d}-visit"
        rid = str(uuid.UUID(int=n + 1))
        ledger.encounters[cid] = EncounterEntry(id=cid, order=n, created_at=1.7e9, ended=True)
        ledger.recordings[rid] = RecordingEntry(
            id=rid, encounter=cid, seq=1, codec="pcm16", sample_rate=16000, created_at=1.7e9,
            state="closed", closed_at=1.7e9 + 10, close_reason="stopped", length=320_000,
        )  # fmt: skip
    ledger.next_order = count
    directory.mkdir()
    commit_ledger(directory, Identities(KEY).to_disk(ledger), CountingFileOps())


def _load(directory: Path) -> tuple[int, int, LedgerData]:
    """(bytes kept, peak bytes while loading, the ledger): as `Spool.open` loads it."""
    gc.collect()
    gc.disable()
    tracemalloc.start()
    try:
        before, _ = tracemalloc.get_traced_memory()
        ids = Identities(KEY)
        ledger = ids.from_disk(load_state(directory))
        gc.collect()
        kept, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        gc.enable()
    del ids  # its key and seal maps are part of what a recording costs: counted above
    return kept - before, peak - before, ledger


def _per_recording(tmp_path: Path) -> tuple[float, float]:
    _write_backlog(tmp_path / "small", SMALL)
    _write_backlog(tmp_path / "large", LARGE)
    _load(tmp_path / "small")  # warm: first-use caches (regexes, validators) are not per entry
    kept_small, peak_small, small = _load(tmp_path / "small")
    kept_large, peak_large, large = _load(tmp_path / "large")
    assert len(small.recordings) == SMALL and len(large.recordings) == LARGE
    span = LARGE - SMALL
    return (kept_large - kept_small) / span, (peak_large - peak_small) / span


def test_a_backlog_costs_under_2_kb_a_recording_in_memory(tmp_path: Path) -> None:
    kept, _ = _per_recording(tmp_path)
    assert kept < KEPT_PER_RECORDING, f"{kept:.0f} bytes kept per recording"


def test_loading_a_backlog_does_not_hold_every_entry_three_times(tmp_path: Path) -> None:
    _, peak = _per_recording(tmp_path)
    assert peak < PEAK_PER_RECORDING, f"{peak:.0f} bytes peak per recording while loading"


def test_the_entries_loaded_are_the_ones_saved(tmp_path: Path) -> None:
    """The cheaper form changes nothing a caller sees: ids back in place, lengths, states."""
    _write_backlog(tmp_path / "d", 3)
    _, _, ledger = _load(tmp_path / "d")
    cid = "backlog-00001-visit"
    rid = str(uuid.UUID(int=2))
    assert ledger.encounters[cid].id == cid and ledger.encounters[cid].sealed_id is None
    assert ledger.recordings_of(cid) == [ledger.recordings[rid]]
    rec = ledger.recordings[rid]
    assert (rec.encounter, rec.state, rec.length, rec.retry.attempts) == (cid, "closed", 320_000, 0)
    assert not rec.delivered and rec.deliverable
