"""SIGKILL a real capture process at random instants (seeded), then reopen the spool:
everything reported durable is there, byte for byte; torn tails are cut; nothing raises."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from edge_recorder.spool import Spool
from edge_recorder.spool.journal import read_state
from tests.conftest import ROOT
from tests.integration.spool.spool_child import child_config, payload
from tests.unit.spool.helpers import all_spool_bytes

TRIALS = 5
SEED = 20251121


@dataclass
class Reported:
    durable: int = 0
    closed: int | None = None


def _run_and_kill(
    directory: Path, key: Path, seed: int, lines_before_kill: int
) -> dict[str, Reported]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.integration.spool.spool_child", str(directory), str(key),
         str(seed)],
        stdout=subprocess.PIPE, text=True, cwd=ROOT,
    )  # fmt: skip
    assert proc.stdout is not None
    reports: dict[str, Reported] = {}

    def take(line: str) -> None:
        kind, rid, *rest = line.split()
        entry = reports.setdefault(rid, Reported())
        if kind == "durable":
            entry.durable = max(entry.durable, int(rest[0]))
        elif kind == "closed":
            entry.closed = int(rest[0])

    for _ in range(lines_before_kill):
        line = proc.stdout.readline()
        assert line, "child ended before it was killed"
        take(line)
    os.kill(proc.pid, signal.SIGKILL)  # while it keeps appending: a random instant
    proc.wait(timeout=30)
    for line in proc.stdout:  # reported before the kill, still in the pipe: just as binding
        if line.endswith("\n"):
            take(line)
    proc.stdout.close()
    return reports


def _tear_tail(spool_dir: Path, rid: str, rng: random.Random) -> bool:
    """What a power cut can leave after the last fsync: a partial record at the end."""
    import uuid

    segments = sorted((spool_dir / "segments").glob(f"{uuid.UUID(rid).hex}-*.seg"))
    if not segments:  # killed before its first append
        return False
    with segments[-1].open("ab") as f:
        f.write(b"ERR1" + rng.randbytes(rng.randint(0, 60)))
    return True


def test_sigkill_at_random_instants_loses_nothing_durable(tmp_path: Path) -> None:
    rng = random.Random(SEED)
    directory, key = tmp_path / "spool", tmp_path / "spool.key"
    config = child_config(directory, key)
    everything: dict[str, Reported] = {}
    torn = 0
    for trial in range(TRIALS):
        reports = _run_and_kill(directory, key, SEED + trial, rng.randint(3, 50))
        everything.update(reports)
        ledger = read_state(directory)  # ledger.json and its journal, as the spool reads them
        assert ledger is not None
        # The kill can land between a ledger save and the report line, either way round.
        open_in_ledger = [r.id for r in ledger.recordings.values() if r.state == "open"]
        if trial % 2 and open_in_ledger and _tear_tail(directory, open_in_ledger[-1], rng):
            torn += 1
        spool = Spool.open(config, environ={})  # must never raise after a kill
        try:
            recovered = {r.id for r in spool.recovered_open_recordings()}
            assert recovered == set(open_in_ledger)
            for rid in recovered:
                spool.close_recovered(rid)
                everything.setdefault(rid, Reported())  # begun, killed before reporting
            for rid, rep in everything.items():
                info = spool.recording(rid)
                assert info.quarantine is None, info.quarantine
                assert info.length >= rep.durable
                if rep.closed is not None:
                    assert info.length == rep.closed
                stored = spool.read(rid, 0, info.length + 1)
                assert stored == payload(rid)[: info.length], f"recording {rid} differs"
        finally:
            spool.close()
    assert torn >= 1 and len(everything) >= TRIALS
    notices = Spool.open(config, environ={})
    try:
        # >=: a kill can also interrupt a multi-page write() and tear a record by itself.
        assert sum(1 for n in notices.notices if n.startswith("torn-tail")) >= torn
    finally:
        notices.close()
    assert b"ERSPSEG1" in all_spool_bytes(directory)  # sanity: we did look at real segments
