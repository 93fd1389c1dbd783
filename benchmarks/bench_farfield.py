"""Far-field front ends (issue #23): channel average vs single channel vs WebRTC NS vs beamformers.

Scenes are generated, nothing downloaded (devtools/farfield): a 4 x 5 x 2.8 m exam room
(pyroomacoustics image method, RT60 0.3/0.5/0.8 s), the device on a wall at 1.5 m with each
hardware profile's real mic layout, a clinician (1-1.8 m) and a patient (1.8-3 m) taking turns
(espeak-ng), diffuse HVAC noise plus a ceiling-vent fan, mixed at 20/10/5/0 dB SNR at channel 1.
Scores are against the anechoic sum of both talkers at the array centre, after alignment:
SI-SDR, STOI, and frame F1 of the project's Silero and WebRTC VADs. CPU is process time in the
candidate, fed 120 ms chunks. Beamformers come from `edge_recorder.audio.array` (every kind in
`KINDS`, alone and + WebRTC NS) when it imports; otherwise only the baselines run, and the
output says so. Oracle ceilings (devtools/farfield/oracle.py, rows named "oracle: ...") are
scored too but are never candidates: they know the answer and bound what a filter could do.
Scenes are cached ($EDGE_RECORDER_FARFIELD_CACHE, else <tmp>/edge-recorder-farfield). A full
run rewrites docs/img/farfield.svg; --quick (12 s scenes, RT60 0.5 s only) and runs limited to
a few conditions do not.

Usually run through benchmarks/run.py; alone, `python -m benchmarks.bench_farfield --help`
runs chosen conditions, prints the table and goals, and can sweep the oracle's frame count
(--sweep) or run the spot-calibrated beam prototype (--calibration, devtools/farfield/
calibrated.py).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

from benchmarks.run import markdown
from devtools.farfield import (
    calibrated,
    calibration_eval,
    evaluate,
    faults,
    geometry,
    oracle,
    plot,
    scene,
    shipped,
)

ROOT = Path(__file__).resolve().parent.parent
SECONDS, QUICK_SECONDS = 30.0, 12.0
CALIBRATION_BASELINE = "mvdr-wpe-postfilter"  # the best shipped kind on the goal cell


def run(
    quick: bool = False,
    profiles: Sequence[str] | None = None,
    rt60s: Sequence[float] | None = None,
    snrs: Sequence[float] | None = None,
) -> dict[str, Any]:
    seconds = QUICK_SECONDS if quick else SECONDS
    chosen_rt60s = tuple(rt60s or ((evaluate.GOAL_RT60_S,) if quick else evaluate.RT60S_S))
    chosen = (tuple(profiles or geometry.PROFILES), chosen_rt60s, tuple(snrs or evaluate.SNRS_DB))
    results, note = evaluate.evaluate(*chosen, seconds)
    print(f"  far-field: {note}", file=sys.stderr, flush=True)
    columns, rows = evaluate.table(results)
    if not quick and chosen == (geometry.PROFILES, evaluate.RT60S_S, evaluate.SNRS_DB):
        svg = plot.farfield_svg(results, subtitle=f"{seconds:g} s scenes, seed 1.")
        (ROOT / plot.SVG_PATH).write_text(svg, encoding="utf-8")
    goals = evaluate.goals(results, note)
    cpu = [
        shipped.measure(name, 5.0 if quick else shipped.SECONDS)
        for name in shipped.array_profiles()
    ]
    cpu += [  # the opt-in room-calibrated beam on the HATs, with three calibrated spots
        shipped.measure(name, 5.0 if quick else shipped.SECONDS, calibrated_spots=3)
        for name in shipped.array_profiles()
        if name in ("respeaker-4mic-array", "respeaker-6mic-array")
    ]
    goals += [
        {
            "goal": f"{c.profile} {'opt-in' if c.kind == 'calibrated' else 'as shipped'} "
            f"({c.kind}, {c.batch_hops}-hop batches, "
            f"{c.period_ms} ms periods): whole pipeline (DSP + Silero + PCM16) <= "
            f"{shipped.BUDGET_CPU_PER_S:g} CPU-s per audio-s (machine reference "
            f"{c.machine_reference_ms:g} ms, benchmarks/_machine.py)",
            "value": c.cpu_per_s,
            "met": c.cpu_per_s <= shipped.BUDGET_CPU_PER_S,
        }
        for c in cpu
    ]
    calibrated_summary: list[dict[str, Any]] = []
    fault_rows: list[dict[str, Any]] = []
    if profiles is None:  # the opt-in room-calibrated beam on the goal cell
        calibrated_summary, calibrated_goals = _calibrated_goals(quick)
        goals += calibrated_goals
        # every profile's shipped beam with one faulty mic (dead, blocked, loud…)
        fault_rows = faults.run(shipped.array_profiles(), seconds)
        _print_table(
            f"Shipped beams with one faulty mic (RT60 {evaluate.GOAL_RT60_S:g} s, "
            f"{evaluate.GOAL_SNR_DB:g} dB, {seconds:g} s)",
            fault_rows,
            file=sys.stderr,
        )
        goals += faults.goals(fault_rows)
    return {
        "title": f"Far-field front ends by condition ({seconds:g} s scenes; {note})",
        "columns": columns,
        "rows": rows,
        "array": note,
        "seconds": seconds,
        "detail": evaluate.as_dicts(results),
        "shipped_cpu": [c.__dict__ for c in cpu],
        "calibrated": calibrated_summary,
        "faulty_mic": fault_rows,
        "goals": goals,
    }


def _calibrated_goals(quick: bool) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The device's `calibrated` kind on sweep-calibrated rooms (calibration_eval, device
    only): the far-field goal at the calibrated spots, and how it falls 10 cm away."""
    seeds, seconds = ((1, 2), QUICK_SECONDS) if quick else ((1, 2, 3, 4), 20.0)
    rows = calibration_eval.run(
        evaluate.GOAL_PROFILES, seeds, seconds, evaluate.GOAL_SNR_DB, evaluate.GOAL_RT60_S,
        prototypes=False,
    )  # fmt: skip
    summary = calibration_eval.summary(rows)
    goals = []
    for profile in evaluate.GOAL_PROFILES:
        short = profile.removeprefix("respeaker-")

        def cell(move: int, short: str = short) -> dict[str, Any]:
            (found,) = (
                r for r in summary
                if r["profile"] == short and r["move cm"] == move
                and r["candidate"] == "device calibrated"
            )  # fmt: skip
            return found

        spot, near = cell(0), cell(10)
        goals.append({
            "goal": f"{profile} opt-in calibrated beam, talkers on the calibrated spots "
            f"({len(seeds)} rooms of {seconds:g} s): >= +6 dB SI-SDR and >= +0.05 STOI over "
            "the average at 5 dB, RT60 0.5 s",
            "value": f"{spot['SI-SDR mean']:+.1f} dB {spot['STOI mean']:+.3f} "
            f"(10 cm off the spot: {near['SI-SDR mean']:+.1f} dB {near['STOI mean']:+.3f})",
            "met": spot["SI-SDR mean"] >= 6.0 and spot["STOI mean"] >= 0.05,
            "why": "docs/audio.md#far-field-evaluation-bench_farfield",
        })  # fmt: skip
    return summary, goals


def main(argv: Sequence[str] | None = None) -> int:
    """Chosen conditions → Markdown table and goals on stdout (and JSON with --out)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="12 s scenes (default RT60 0.5 s)")
    parser.add_argument("--profile", action="append", choices=geometry.PROFILES)
    parser.add_argument("--rt60", action="append", type=float, help="RT60 s (repeatable)")
    parser.add_argument("--snr", action="append", type=float, help="SNR dB (repeatable)")
    parser.add_argument("--out", type=Path, help="also write the result as JSON here")
    parser.add_argument(
        "--sweep", action="store_true",
        help="instead: the least-squares oracle's SI-SDR gain for 1..16 frames per condition",
    )  # fmt: skip
    parser.add_argument(
        "--calibration", action="store_true",
        help="instead: the spot-calibrated beam prototype against talker movement",
    )  # fmt: skip
    parser.add_argument(
        "--calibration-honest", action="store_true",
        help="instead: sweep-calibrated beams, talkers moved 0-20 cm, fresh noise and speech "
        "(devtools/farfield/calibration_eval.py; --quick: 2 rooms of 12 s, else 8 of 20 s)",
    )  # fmt: skip
    parser.add_argument(
        "--device-only", action="store_true",
        help="with --calibration-honest: only the device's `calibrated` kind (and its fallback "
        "test), the blind kinds and the prototype's best (region 5 cm mwf): ~3x faster",
    )  # fmt: skip
    args = parser.parse_args(argv)
    if args.calibration_honest:
        return _calibration_honest(args)
    if args.sweep:
        return _sweep(args)
    if args.calibration:
        return _calibration(args)
    result = run(args.quick, args.profile, args.rt60, args.snr)
    print(markdown(result))
    if args.out:
        args.out.write_text(json.dumps(result, indent=1, default=str), encoding="utf-8")
    return 0


def _sweep(args: argparse.Namespace) -> int:
    seconds = QUICK_SECONDS if args.quick else SECONDS
    for profile in args.profile or evaluate.GOAL_PROFILES:
        for rt60 in args.rt60 or (evaluate.GOAL_RT60_S,):
            scn = scene.load(scene.SceneSpec(profile, rt60, seconds, 1))
            for snr in args.snr or (evaluate.GOAL_SNR_DB,):
                _print_table(
                    f"{profile}, RT60 {rt60:g} s, {snr:g} dB, {seconds:g} s: SI-SDR gain (dB) "
                    "over the channel average of the noisy capture",
                    oracle.sweep(scn, snr),
                )
    return 0


def _calibration(args: argparse.Namespace) -> int:
    seconds = QUICK_SECONDS if args.quick else SECONDS
    for profile in args.profile or evaluate.GOAL_PROFILES:
        for rt60 in args.rt60 or (evaluate.GOAL_RT60_S,):
            for snr in args.snr or (evaluate.GOAL_SNR_DB,):
                _print_table(
                    f"{profile}, RT60 {rt60:g} s, {snr:g} dB, {seconds:g} s: SI-SDR gain (dB) "
                    "over the channel average, second half, talkers moved from the spot",
                    calibrated.robustness(profile, rt60, snr, seconds, CALIBRATION_BASELINE),
                )
    return 0


def _calibration_honest(args: argparse.Namespace) -> int:
    seconds, seeds = (QUICK_SECONDS, (1, 2)) if args.quick else (20.0, tuple(range(1, 9)))
    snr = (args.snr or [evaluate.GOAL_SNR_DB])[0]
    rt60 = (args.rt60 or [evaluate.GOAL_RT60_S])[0]
    profiles = args.profile or evaluate.GOAL_PROFILES
    rows = calibration_eval.run(
        profiles, seeds, seconds, snr, rt60, prototypes=not args.device_only
    )
    _print_table(
        f"RT60 {rt60:g} s, {snr:g} dB, {len(seeds)} rooms of {seconds:g} s: gains over the "
        "channel average (mean, range over rooms), talkers moved from the calibrated spots",
        calibration_eval.summary(rows),
    )
    if args.out:
        args.out.write_text(json.dumps(rows, indent=1), encoding="utf-8")
    return 0


def _print_table(title: str, rows: Sequence[dict[str, Any]], file: TextIO = sys.stdout) -> None:
    """A titled Markdown table of rows that share their keys (the columns)."""
    print(f"\n{title}", file=file)
    print("| " + " | ".join(rows[0]) + " |\n|" + "---|" * len(rows[0]), file=file)
    for row in rows:
        cells = (f"{v:g}" if isinstance(v, int | float) else str(v) for v in row.values())
        print("| " + " | ".join(cells) + " |", file=file, flush=True)


if __name__ == "__main__":
    sys.exit(main())
