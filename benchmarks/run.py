"""Run every benchmark module (`benchmarks/bench_*.py`), write results.json, print Markdown.

Preferred: a module provides `run(quick: bool) -> dict` with "title", "columns", "rows" (the
table), optional "goals" ([{"goal", "value", "met", "why"}]; "why", for a goal not met, says
where its shortfall is explained) and any detail it wants kept in the JSON.
A module with only `measure() -> dict` (flat metrics, optional "ok") is shown as a
metric/value table.
CPU figures are process CPU time, not wall time, so a busy machine inflates them less; still,
re-run on a quiet machine before quoting them. The machine's speed before and after the run
(`_machine.reference_ms`: one fixed workload's CPU time) is kept in the JSON's "meta" and
printed, so figures from different days can be compared.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import sys
import time
import traceback
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from benchmarks import _machine  # noqa: E402  (after the path: run as a script)


def markdown(result: dict[str, Any]) -> str:
    lines = [
        f"### {result['title']}",
        "",
        "| " + " | ".join(result["columns"]) + " |",
        "|" + "---|" * len(result["columns"]),
    ]
    for row in result["rows"]:
        lines.append("| " + " | ".join(str(cell) for cell in row) + " |")
    for goal in result.get("goals", []):
        mark = "met" if goal["met"] else "NOT met"
        if not goal["met"] and goal.get("why"):
            mark += f"; why: {goal['why']}"
        lines.append(f"\nGoal: {goal['goal']}: {goal['value']} ({mark})")
    return "\n".join(lines)


def collect(name: str, quick: bool) -> dict[str, Any]:
    module = importlib.import_module(f"benchmarks.{name}")
    if hasattr(module, "run"):
        result: dict[str, Any] = module.run(quick=quick)
        return result
    if hasattr(module, "measure"):
        flat: dict[str, Any] = module.measure()
        table: dict[str, Any] = {
            "title": (module.__doc__ or name).strip().splitlines()[0],
            "columns": ["metric", "value"],
            "rows": [[key, value] for key, value in flat.items() if key != "ok"],
            "detail": flat,
        }
        if "ok" in flat:
            table["goals"] = [{"goal": "module's own goal", "value": flat["ok"], "met": flat["ok"]}]
        return table
    raise TypeError(f"benchmarks/{name}.py has neither run(quick) nor measure()")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--only", action="append", help="module name(s), e.g. bench_vad")
    parser.add_argument("--quick", action="store_true", help="shorter inputs (smoke run)")
    parser.add_argument("--out", type=Path, default=HERE / "results.json")
    args = parser.parse_args()
    names = sorted(p.stem for p in HERE.glob("bench_*.py"))
    if args.only:
        names = [n for n in names if n in args.only]
    report: dict[str, Any] = {
        "meta": {
            "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "host": platform.node(),
            "machine": platform.machine(),
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "loadavg_before": os.getloadavg(),
            "machine_reference_ms_before": _machine.reference_ms(),
            "cpu": _machine.describe(),
            "quick": args.quick,
        },
        "benchmarks": {},
    }
    failed = False
    reference = report["meta"]["machine_reference_ms_before"]
    cpu = report["meta"]["cpu"]
    print(
        f"machine reference: {reference:g} ms (benchmarks/_machine.py); {cpu['model']}, "
        f"AVX-512 {'yes' if cpu['avx512'] else 'no'}, OpenBLAS kernels {cpu['openblas']}\n",
        flush=True,
    )
    for name in names:
        print(f"running {name} ...", file=sys.stderr, flush=True)
        try:
            result = collect(name, args.quick)
        except Exception:
            traceback.print_exc()
            report["benchmarks"][name] = {"error": traceback.format_exc()}
            failed = True
            continue
        report["benchmarks"][name] = result
        print(markdown(result) + "\n", flush=True)
    report["meta"]["loadavg_after"] = os.getloadavg()
    report["meta"]["machine_reference_ms_after"] = _machine.reference_ms()
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
