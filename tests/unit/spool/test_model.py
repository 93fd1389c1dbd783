"""Model-based test (as Vector does for its disk buffer): random sequences of appends, reads,
acks, clean restarts and crashes must match a plain in-memory model of what was recorded."""

from __future__ import annotations

import shutil
import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from edge_recorder.spool import RecordingWriter, Spool
from tests.unit.spool.helpers import crash, open_spool, spool_config


@dataclass
class ModelRecording:
    encounter: str
    seq: int
    data: bytearray = field(default_factory=bytearray)
    open: bool = True
    confirmed: int = 0
    finalized: bool = False


class SpoolModel(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.tmp = Path(tempfile.mkdtemp(prefix="spool-model-"))
        self.config = spool_config(self.tmp, segment_bytes=4096)
        self.spool: Spool = open_spool(self.config)
        self.writers: dict[str, RecordingWriter] = {}
        self.recs: dict[str, ModelRecording] = {}
        self.ended: set[str] = set()
        self.started: set[str] = set()
        self.counter = 0
        self.enc_order: list[str] = []

    def teardown(self) -> None:
        self.spool.close()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def _ids(self, pred) -> list[str]:  # type: ignore[no-untyped-def]
        return sorted(r for r, m in self.recs.items() if pred(m))

    @rule(enc=st.sampled_from(["A", "B", "C", "D"]))
    def begin(self, enc: str) -> None:
        if enc in self.ended:
            return
        if enc not in self.enc_order:
            self.enc_order.append(enc)
        seq = sum(1 for m in self.recs.values() if m.encounter == enc) + 1
        self.counter += 1
        rid = str(uuid.UUID(int=self.counter))
        self.writers[rid] = self.spool.begin_recording(
            enc, seq, rid, codec="pcm16", sample_rate=16000
        )
        self.recs[rid] = ModelRecording(enc, seq)

    @rule(pick=st.integers(0, 99), data=st.binary(min_size=1, max_size=3000))
    def append(self, pick: int, data: bytes) -> None:
        open_ids = self._ids(lambda m: m.open)
        if open_ids:
            rid = open_ids[pick % len(open_ids)]
            assert self.writers[rid].append(data) == len(self.recs[rid].data) + len(data)
            self.recs[rid].data += data

    @rule(pick=st.integers(0, 99))
    def close(self, pick: int) -> None:
        open_ids = self._ids(lambda m: m.open)
        if open_ids:
            rid = open_ids[pick % len(open_ids)]
            self.writers.pop(rid).close()
            self.recs[rid].open = False

    @rule(pick=st.integers(0, 99), at=st.floats(0, 1), size=st.integers(1, 10_000))
    def read(self, pick: int, at: float, size: int) -> None:
        ids = sorted(self.recs)
        if ids:
            rid = ids[pick % len(ids)]
            data = self.recs[rid].data
            offset = int(at * len(data))
            assert self.spool.read(rid, offset, size) == bytes(data[offset : offset + size])

    @rule(pick=st.integers(0, 99), at=st.floats(0, 1))
    def confirm(self, pick: int, at: float) -> None:
        ids = sorted(self.recs)
        if ids:
            rid = ids[pick % len(ids)]
            m = self.recs[rid]
            offset = len(m.data) if at > 0.7 else int(at * len(m.data))
            self.spool.confirm(rid, offset)
            m.confirmed = max(m.confirmed, offset)

    @rule(pick=st.integers(0, 99))
    def finalize(self, pick: int) -> None:
        ready = self._ids(lambda m: not m.open and m.confirmed == len(m.data))
        if ready:
            rid = ready[pick % len(ready)]
            self.spool.mark_finalized(rid)
            self.recs[rid].finalized = True

    @rule(enc=st.sampled_from(["A", "B", "C", "D"]))
    def end_and_maybe_process(self, enc: str) -> None:
        mine = [m for m in self.recs.values() if m.encounter == enc]
        if not mine or any(m.open for m in mine) or enc in self.started:
            return
        self.spool.end_encounter(enc)
        self.ended.add(enc)
        if all(m.finalized for m in mine):
            self.spool.mark_processing_started(enc)
            self.started.add(enc)
            for rid in self._ids(lambda m: m.encounter == enc):
                del self.recs[rid]  # reclaimed

    @precondition(lambda self: bool(self.recs))
    @rule()
    def restart_cleanly(self) -> None:
        self.spool.close()
        for rid in list(self.writers):
            self.recs[rid].open = False
        self.writers.clear()
        self.spool = open_spool(self.config)

    @precondition(lambda self: bool(self.recs))
    @rule()
    def crash_and_recover(self) -> None:
        crash(self.spool)
        self.spool = open_spool(self.config)
        for rid, m in self.recs.items():
            # Acks are persisted lazily (re-sending is idempotent): they may only roll BACK.
            confirmed = self.spool.recording(rid).confirmed
            assert confirmed <= m.confirmed
            m.confirmed = confirmed
        recovered = {r.id for r in self.spool.recovered_open_recordings()}
        assert recovered == set(self.writers)
        for rid in recovered:
            self.spool.close_recovered(rid)
            self.recs[rid].open = False
        self.writers.clear()

    @invariant()
    def matches_model(self) -> None:
        infos = {r.id: r for r in self.spool.recordings()}
        assert set(infos) == set(self.recs)
        for rid, m in self.recs.items():
            info = infos[rid]
            assert info.length == len(m.data)
            assert info.state == ("open" if m.open else "closed")
            assert info.confirmed == m.confirmed and info.finalized == m.finalized
        on_disk = {p.name.split("-")[0] for p in (self.config.dir / "segments").iterdir()}
        assert on_disk <= {uuid.UUID(r).hex for r in self.recs}
        assert self.spool.backlog().recordings == len(self.recs)
        pending = [r.id for r in self.spool.pending_recordings()]
        undelivered = [r for r, m in self.recs.items() if not m.finalized]
        order = self.enc_order.index
        expected = sorted(
            undelivered, key=lambda r: (order(self.recs[r].encounter), self.recs[r].seq)
        )
        assert pending == expected  # oldest encounter first, then by seq


SpoolModel.TestCase.settings = settings(
    max_examples=25,
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestSpoolModel = SpoolModel.TestCase
