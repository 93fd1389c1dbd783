"""Far-field front ends (issue #23): channel average vs single channel vs WebRTC NS vs beamformers.

Scenes are generated, nothing downloaded (devtools/farfield): a 4 x 5 x 2.8 m exam room
(pyroomacoustics image method, RT60 0.3/0.5/0.8 s), the device on a wall at 1.5 m with each
hardware profile's real mic layout, a clinician (1-1.8 m) and a patient (1.8-3 m) taking turns
(espeak-ng), diffuse HVAC noise plus a ceiling-vent fan, mixed at 20/10/5/0 dB SNR at channel 1.
Scores are against the anechoic sum of both talkers at the array centre, after alignment:
SI-SDR, STOI, and frame F1 of the project's Silero and WebRTC VADs. CPU is process time in the
candidate, fed 120 ms chunks. Beamformers come from `edge_recorder.audio.array` (every kind in
`KINDS`, alone and + WebRTC NS) when it imports; otherwise only the baselines run, and the
output says so. Scenes are cached ($EDGE_RECORDER_FARFIELD_CACHE, else <tmp>/edge-recorder-
farfield). A full run rewrites docs/img/farfield.svg; --quick (12 s scenes, RT60 0.5 s only)
does not.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from devtools.farfield import evaluate, geometry, plot

ROOT = Path(__file__).resolve().parent.parent
SECONDS, QUICK_SECONDS = 30.0, 12.0


def run(quick: bool = False) -> dict[str, Any]:
    seconds = QUICK_SECONDS if quick else SECONDS
    rt60s = (evaluate.GOAL_RT60_S,) if quick else evaluate.RT60S_S
    results, note = evaluate.evaluate(geometry.PROFILES, rt60s, evaluate.SNRS_DB, seconds)
    print(f"  far-field: {note}", file=sys.stderr, flush=True)
    columns, rows = evaluate.table(results)
    if not quick:
        svg = plot.farfield_svg(results, subtitle=f"{seconds:g} s scenes, seed 1.")
        (ROOT / plot.SVG_PATH).write_text(svg, encoding="utf-8")
    return {
        "title": f"Far-field front ends by condition ({seconds:g} s scenes; {note})",
        "columns": columns,
        "rows": rows,
        "array": note,
        "seconds": seconds,
        "detail": evaluate.as_dicts(results),
        "goals": evaluate.goals(results, note),
    }
