"""Ledger cost per encounter, and start-up, against the number of encounters in the spool.

The spool is pre-filled with N undelivered encounters (one closed 1 s recording each, fsync
skipped while filling, so the set-up is quick), closed, then reopened with real I/O; that
open() is timed. Then M more encounters each run the whole delivery lifecycle through the
Spool API as the daemon drives it: begin_recording, append, close, end_encounter, confirm,
mark_finalized, mark_processing_started (which reclaims the audio, so the ledger stays at N).
CPU (process time: user + system, so the fsyncs' kernel time counts) and wall time are per
encounter, minus nothing: the audio append, the recording header and the segment fsyncs are in
them too, so the figure is an upper bound on the ledger's share.
Goal: < 5 ms CPU per encounter at N = 2,000, and flat (user CPU) from N = 10 to N = 2,000.
Before the ledger journal (issue #24): 4.6 / 67 / 352 ms CPU at N = 10 / 500 / 2,000.

    python benchmarks/bench_ledger.py [--sizes 10 500 2000] [--cycles 100] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from edge_recorder.config.model import SpoolConfig
from edge_recorder.spool import Spool
from edge_recorder.spool.fileops import CountingFileOps, OsFileOps

CHUNK = bytes(3200)  # 100 ms of 16 kHz PCM16
GOAL_CPU_MS = 5.0


class _NoSyncOps(OsFileOps):
    """Set-up only: the pre-fill need not be durable, just quick."""

    def fsync(self, fd: int) -> None:
        return None


def _config(root: Path) -> SpoolConfig:
    return SpoolConfig(dir=root / "spool", key_file=root / "spool.key", reserve_free_bytes=0)


def _record(spool: Spool, cid: str) -> str:
    rid = str(uuid.uuid4())
    writer = spool.begin_recording(cid, 1, rid, codec="pcm16", sample_rate=16000)
    for _ in range(10):
        writer.append(CHUNK)
    writer.close("stop")
    return rid


def _lifecycle(spool: Spool, cid: str) -> None:
    """What the daemon and the delivery engine do to the ledger for one encounter."""
    rid = _record(spool, cid)
    spool.end_encounter(cid)
    spool.confirm(rid, spool.recording(rid).length)
    spool.mark_finalized(rid)
    spool.mark_processing_started(cid)


def measure(size: int, cycles: int = 100, directory: Path | None = None) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(dir=directory) as tmp:
        config = _config(Path(tmp))
        with Spool.open(config, environ={}, ops=_NoSyncOps()) as spool:
            for i in range(size):
                _record(spool, f"resident-{i:06d}")
        ledger_bytes = (config.dir / "ledger.json").stat().st_size
        os.sync()  # the pre-fill's dirty pages must not be flushed by the measured fsyncs
        ops = CountingFileOps()
        wall = time.perf_counter()
        cpu = time.process_time()
        spool = Spool.open(config, environ={}, ops=ops)
        open_wall, open_cpu = time.perf_counter() - wall, time.process_time() - cpu
        try:
            _lifecycle(spool, "warm-up")
            ops.bytes_written = ops.fsyncs = 0
            wall, times = time.perf_counter(), os.times()
            for i in range(cycles):
                _lifecycle(spool, f"cycle-{i:06d}")
            wall, after = time.perf_counter() - wall, os.times()
            user, system = after.user - times.user, after.system - times.system
            written, fsyncs = ops.bytes_written, ops.fsyncs  # not the compaction at close
        finally:
            spool.close()
        assert len(spool.ledger.encounters) == size, "the ledger must stay at N encounters"
    return {
        "encounters": size,
        "cycles": cycles,
        "ledger_bytes": ledger_bytes,
        "cpu_ms_per_encounter": round((user + system) / cycles * 1000, 2),
        "user_ms_per_encounter": round(user / cycles * 1000, 2),
        "system_ms_per_encounter": round(system / cycles * 1000, 2),
        "wall_ms_per_encounter": round(wall / cycles * 1000, 2),
        "bytes_written_per_encounter": written // cycles,
        "fsyncs_per_encounter": round(fsyncs / cycles, 1),
        "open_wall_s": round(open_wall, 3),
        "open_cpu_s": round(open_cpu, 3),
    }


def run(quick: bool = False, sizes: tuple[int, ...] = (10, 500, 2000)) -> dict[str, Any]:
    """The `benchmarks/run.py` table, with the goals."""
    cycles = 30 if quick else 100
    detail = [measure(n, cycles) for n in sizes]
    rows = [
        [d["encounters"], d["ledger_bytes"], d["cpu_ms_per_encounter"],
         d["user_ms_per_encounter"], d["wall_ms_per_encounter"], d["bytes_written_per_encounter"],
         d["fsyncs_per_encounter"], d["open_wall_s"]]
        for d in detail
    ]  # fmt: skip
    largest, smallest = detail[-1], detail[0]
    # Flat: the Python work (user CPU) at the largest size within 2x + 1 ms of the smallest;
    # system time also holds unlink/fsync in directories with N files, not the ledger's doing.
    flat = largest["user_ms_per_encounter"] <= 2 * smallest["user_ms_per_encounter"] + 1.0
    return {
        "title": f"Ledger cost per encounter lifecycle ({cycles} encounters per size)",
        "columns": ["encounters in spool", "ledger.json bytes", "CPU ms / encounter",
                    "of which user ms", "wall ms / encounter", "bytes written / encounter",
                    "fsyncs / encounter", "open() s"],
        "rows": rows,
        "goals": [
            {
                "goal": f"CPU per encounter < {GOAL_CPU_MS} ms at {largest['encounters']}",
                "value": largest["cpu_ms_per_encounter"],
                "met": largest["cpu_ms_per_encounter"] < GOAL_CPU_MS,
            },
            {
                "goal": f"flat: user CPU at {largest['encounters']} <= 2x user CPU at "
                f"{smallest['encounters']} + 1 ms",
                "value": f"{smallest['user_ms_per_encounter']} -> "
                f"{largest['user_ms_per_encounter']}",
                "met": flat,
            },
        ],
        "detail": detail,
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 500, 2000])
    parser.add_argument("--cycles", type=int, default=100)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    results = [measure(n, args.cycles) for n in args.sizes]
    if args.json:
        print(json.dumps(results))
        return
    for r in results:
        print("  ".join(f"{k}={v}" for k, v in r.items()))
    print(f"loadavg {os.getloadavg()}")


if __name__ == "__main__":
    main()
