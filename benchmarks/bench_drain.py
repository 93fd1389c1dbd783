"""Drain of a spooled backlog after an outage: the real daemon to the emulator on loopback
(issue #24: cost that grows with the backlog).

Each case spools a backlog, starts the real `edge-recorder run` while the emulator is down,
then brings the emulator back and times the drain until every encounter was handed to
processing (see benchmarks/_drain_daemon.py). The daemon and the emulator are separate
processes, so each side's CPU is its own (per-process utime + stime): a slow emulator can no
longer hide the device's figures, and the emulator's own growth shows too.

Cases (--quick: in brackets):
- long, per transport: one encounter holding one closed recording of 1 h and of 8 h [5 min
  and 40 min] of 16 kHz PCM16 (~115 MB of audio per hour). gRPC: the service knew the
  recording live, the daemon finishes it by resume in big messages; REST: storeChunk of
  `uplink.rest_chunk_bytes` + finalizeUpload. Then StartProcessing.
- many: 2,000 [200] encounters of one 10 s recording each (REST).

Figures: drain seconds (first session request after the network returned, to the last
StartProcessing), x real time, CPU-s per audio-hour of the device and of the emulator, peak
RSS of the device (VmHWM, start-up included), and for many: device CPU ms per encounter, in
total and as overhead (minus the per-byte cost the longest REST case of the run measured), the
time from the network's return to the oldest encounter's StartProcessing (the offline probe,
uplink.offline_probe_s = 5 s, is part of it).

Goals (issue #24): drain >= 100x real time; per audio-hour, the 8 h case within 10 % of the
1 h case (drain seconds, device CPU, emulator CPU); device peak RSS < 120 MB whatever the
backlog; per-encounter overhead < 5 ms CPU; the oldest encounter processed within 10 s of
the network's return, whatever the backlog behind it.

    python -m benchmarks.bench_drain [--quick] [--case rest:3600] [--dir DIR] [--json]

CASE: grpc:<seconds>, rest:<seconds> or many:<count>. DIR: where the spool and the
emulator's data go (the 8 h case needs ~2 GB free: spool + service copy).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._drain_daemon import Backlog, run_case

GOALS = {"x_realtime": 100.0, "per_hour_ratio": 1.10, "rss_mb": 120.0, "encounter_ms": 5.0,
         "first_processed_s": 10.0}  # fmt: skip
MANY_SECONDS = 10.0


def sizes(quick: bool) -> tuple[float, float, int]:
    """(short s, long s, encounters): the long case is 8x the short one."""
    return (300.0, 2400.0, 200) if quick else (3600.0, 28800.0, 2000)


def backlog(case: str) -> Backlog:
    kind, _, size = case.partition(":")
    if kind == "many":
        return Backlog(int(size), MANY_SECONDS, live=False)
    if kind not in ("grpc", "rest"):
        raise ValueError(f"unknown case {case!r}")
    return Backlog(1, float(size), live=kind == "grpc")


def _disk_needed(cases: list[str]) -> int:
    return max(int(backlog(c).audio_s * 32000 * 4.5) for c in cases)  # spool, chunks, raw, wav


async def measure(cases: list[str], directory: Path | None = None) -> list[dict[str, Any]]:
    parent = directory or Path(tempfile.gettempdir())
    free = shutil.disk_usage(parent).free
    if free < _disk_needed(cases):
        raise RuntimeError(f"{parent}: {free / 1e9:.1f} GB free, the largest case needs more")
    results = []
    for case in cases:
        print(f"  drain case {case} ...", file=sys.stderr, flush=True)
        results.append({"case": case, **await run_case(backlog(case), parent)})
        print(f"  {json.dumps(results[-1])}", file=sys.stderr, flush=True)
    return results


def _span(seconds: float) -> str:
    return f"{seconds / 3600:g} h" if seconds >= 3600 else f"{seconds / 60:g} min"


def _goal(goal: str, value: Any, met: bool) -> dict[str, Any]:
    return {"goal": goal, "value": value, "met": met}


def _long_goals(by_case: dict[str, dict[str, Any]], quick: bool) -> list[dict[str, Any]]:
    short, long, _ = sizes(quick)
    out: list[dict[str, Any]] = []
    for transport in ("grpc", "rest"):
        one, eight = by_case.get(f"{transport}:{short:g}"), by_case.get(f"{transport}:{long:g}")
        for r in (x for x in (one, eight) if x):
            fast = r["x_realtime"] >= GOALS["x_realtime"] and r["bytes_equal"]
            out.append(_goal(f"{r['case']}: drain >= {GOALS['x_realtime']:g}x real time, "
                             "bytes equal", r["x_realtime"], fast))  # fmt: skip
            rss = r["device_peak_rss_mb"]
            out.append(_goal(f"{r['case']}: device peak RSS < {GOALS['rss_mb']:g} MB", rss,
                             rss < GOALS["rss_mb"]))  # fmt: skip
        if one and eight:
            for key, label in (("drain_s", "drain s"), ("device_cpu_s", "device CPU-s"),
                               ("emulator_cpu_s", "emulator CPU-s")):  # fmt: skip
                ratio = round((eight[key] / long) / max(one[key] / short, 1e-9), 3)
                out.append(_goal(f"{transport}: {label} per audio-hour, {_span(long)} over "
                                 f"{_span(short)} <= {GOALS['per_hour_ratio']:g}", ratio,
                                 ratio <= GOALS["per_hour_ratio"]))  # fmt: skip
    return out


def goals(results: list[dict[str, Any]], quick: bool) -> list[dict[str, Any]]:
    by_case = {r["case"]: r for r in results}
    out = _long_goals(by_case, quick)
    many = by_case.get(f"many:{sizes(quick)[2]}")
    if many:
        overhead = many.get("device_overhead_ms_per_encounter")
        first = many["network_back_to_first_processed_s"]
        out += [
            _goal(f"many: device overhead per encounter < {GOALS['encounter_ms']:g} ms CPU",
                  overhead, overhead is not None and overhead < GOALS["encounter_ms"]),
            _goal(f"many: device peak RSS < {GOALS['rss_mb']:g} MB", many["device_peak_rss_mb"],
                  many["device_peak_rss_mb"] < GOALS["rss_mb"]),
            _goal(f"many: oldest encounter processed within {GOALS['first_processed_s']:g} s of "
                  "the network's return, oldest first throughout", first,
                  first is not None and first <= GOALS["first_processed_s"]
                  and many["oldest_first"]),
        ]  # fmt: skip
    return out


def per_encounter(results: list[dict[str, Any]]) -> None:
    """Device CPU per encounter of the many cases: in total, and as overhead, net of what the
    same audio costs in one long recording (the device CPU per audio-hour of the longest REST
    case of the run, the steadiest figure)."""
    rest = [r for r in results if r["case"].startswith("rest:")]
    reference = max(rest, key=lambda r: r["audio_s"], default=None)
    for r in results:
        if r["case"].startswith("many:"):
            r["device_ms_per_encounter"] = round(r["device_cpu_s"] / r["encounters"] * 1000, 2)
            if reference is not None:
                bytes_cpu = reference["device_cpu_s"] / reference["audio_s"] * r["audio_s"]
                overhead = (r["device_cpu_s"] - bytes_cpu) / r["encounters"] * 1000
                r["device_overhead_ms_per_encounter"] = round(overhead, 2)
                r["overhead_reference"] = reference["case"]


def run(quick: bool = False, directory: Path | None = None) -> dict[str, Any]:
    """The `benchmarks/run.py` table, with the goals."""
    short, long, count = sizes(quick)
    cases = [f"{t}:{s:g}" for t in ("grpc", "rest") for s in (short, long)] + [f"many:{count}"]
    results = asyncio.run(measure(cases, directory))
    per_encounter(results)
    rows = [
        [r["case"], r["encounters"], r["audio_s"], r["drain_s"], r["x_realtime"],
         r["device_cpu_s_per_h"], r["emulator_cpu_s_per_h"], r["device_peak_rss_mb"],
         r.get("device_ms_per_encounter", ""), r.get("device_overhead_ms_per_encounter", ""),
         r["network_back_to_first_processed_s"], r["bytes_equal"]]
        for r in results
    ]  # fmt: skip
    return {
        "title": "Backlog drain after an outage: the real daemon to the emulator (loopback), "
        "per process",
        "columns": ["case", "encounters", "audio s", "drain s", "x real time",
                    "device CPU-s/audio-h", "emulator CPU-s/audio-h", "device peak RSS MB",
                    "device ms/encounter", "overhead ms/encounter", "back -> first processed s",
                    "bytes equal"],
        "rows": rows,
        "goals": goals(results, quick),
        "detail": results,
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--case", action="append", help="grpc:S, rest:S or many:N (repeatable)")
    parser.add_argument("--dir", type=Path, help="parent directory for spool and service data")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if not args.case:
        result = run(args.quick, args.dir)
        if args.json:
            print(json.dumps(result, indent=2))
        else:
            from benchmarks.run import markdown

            print(markdown(result))
        return
    results = asyncio.run(measure(args.case, args.dir))
    per_encounter(results)
    for r in results:
        print(json.dumps(r))


if __name__ == "__main__":
    main()
