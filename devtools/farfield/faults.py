"""The shipped beams with one faulty microphone: "no worse than the channel average in any
condition", for the conditions a device meets in the field.

A dead capsule, a port blocked by paint or dust, a capsule 6 dB off its neighbours, a
disconnected mic that gives only its preamp's hiss, an oscillating preamp: each is applied
to mic 2 of the goal cell's scene (RT60 0.5 s, 5 dB SNR), and each HAT profile's shipped
kind (at its own `array_batch_hops`) is scored against the plain mix of the same broken
capture, the way a device would be (the channel average has no way around the fault
either). The beam must be no worse than that mix (SI-SDR within `NO_WORSE_DB`, STOI within
`NO_WORSE_STOI`) and keep its level within `LEVEL_DB` of the healthy beam's (before
`edge_recorder/audio/array/mic_balance.py`, one dead mic of four took it 27 dB down).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from devtools.farfield import candidates, evaluate, metrics, scene
from edge_recorder.audio.array import make_array_processor
from edge_recorder.audio.array.beamformers import DasProcessor
from edge_recorder.config.hardware import all_profiles

F32 = npt.NDArray[np.float32]
MIC = 1  # the faulty one (0-based)
LEVEL_DB = 3.0  # the beam's level may fall this far below the healthy beam's
SKIP_S = 1.0  # levels are compared after the balance's first verdict


def _scaled(gain: float) -> Callable[[F32, np.random.Generator], F32]:
    def apply(mic: F32, rng: np.random.Generator) -> F32:
        return (mic * np.float32(gain)).astype(np.float32)

    return apply


def _noise(rms: float) -> Callable[[F32, np.random.Generator], F32]:
    def apply(mic: F32, rng: np.random.Generator) -> F32:
        return (rms * rng.standard_normal(mic.size)).astype(np.float32)

    return apply


FAULTS: dict[str, Callable[[F32, np.random.Generator], F32]] = {
    "dead (zeros)": _scaled(0.0),
    "blocked port (-20 dB)": _scaled(0.1),
    "6 dB low": _scaled(0.5),
    "disconnected (hiss at -60 dBFS)": _noise(1e-3),
    "oscillating preamp (noise at -10 dBFS)": _noise(0.3),
}


def _level_db(x: F32) -> float:
    return float(10.0 * np.log10(np.mean(x.astype(np.float64) ** 2) + 1e-30))


def run(profiles: Sequence[str], seconds: float, seed: int = 1) -> list[dict[str, Any]]:
    """One row per profile and fault: the plain mix's and the beam's SI-SDR and STOI, the
    beam's level against the healthy beam's, and which mics the beam left out."""
    shipped = all_profiles()
    rows = []
    for profile in profiles:
        audio = shipped[profile].audio
        kind, hops = str(audio["array_processing"]), int(audio.get("array_batch_hops", 8))
        spec = scene.SceneSpec(profile, evaluate.GOAL_RT60_S, seconds, seed)
        scn = scene.load(spec)
        capture = scene.mix(scn, evaluate.GOAL_SNR_DB)
        healthy = make_array_processor(kind, scn.positions_m, scene.RATE, hops)
        good, _ = candidates.run(healthy, capture)
        skip = healthy.delay_samples + int(SKIP_S * scene.RATE)
        for name, fault in FAULTS.items():
            broken = capture.copy()
            broken[:, MIC] = fault(capture[:, MIC], np.random.default_rng(seed))
            mix, _ = candidates.run(candidates.ChannelAverage(), broken)
            beam = make_array_processor(kind, scn.positions_m, scene.RATE, hops)
            out, _ = candidates.run(beam, broken)
            plain = metrics.score(scn.reference, mix, 0, {})
            scored = metrics.score(scn.reference, out, beam.delay_samples, {})
            left = beam.balance.faults() if isinstance(beam, DasProcessor) else []
            level = _level_db(out[skip:]) - _level_db(good[skip:])
            rows.append({
                "profile": profile,
                "kind": kind,
                "fault in mic 2": name,
                "mix SI-SDR": round(plain.si_sdr_db, 2),
                "beam SI-SDR": round(scored.si_sdr_db, 2),
                "mix STOI": round(plain.stoi, 3),
                "beam STOI": round(scored.stoi, 3),
                "level vs healthy beam dB": round(level, 1),
                "left out": ", ".join(f"mic {f.index + 1} {f.reason}" for f in left) or "-",
            })  # fmt: skip
    return rows


def goals(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per profile: every fault no worse than the plain mix, and the level kept."""
    out = []
    for profile in dict.fromkeys(r["profile"] for r in rows):
        mine = [r for r in rows if r["profile"] == profile]
        worst_db = min(r["beam SI-SDR"] - r["mix SI-SDR"] for r in mine)
        worst_stoi = min(r["beam STOI"] - r["mix STOI"] for r in mine)
        worst_level = min(r["level vs healthy beam dB"] for r in mine)
        met = (
            worst_db >= -evaluate.NO_WORSE_DB
            and worst_stoi >= -evaluate.NO_WORSE_STOI
            and worst_level >= -LEVEL_DB
        )
        out.append({
            "goal": f"{profile} as shipped ({mine[0]['kind']}) with one faulty mic "
            f"({len(mine)} faults, RT60 {evaluate.GOAL_RT60_S:g} s, "
            f"{evaluate.GOAL_SNR_DB:g} dB): no worse than the plain mix of the same capture, "
            f"level within {LEVEL_DB:g} dB of the healthy beam",
            "value": f"worst {worst_db:+.2f} dB SI-SDR, {worst_stoi:+.3f} STOI over the mix, "
            f"level {worst_level:+.1f} dB",
            "met": met,
            "why": "docs/audio.md#array-processing-audioarray_processing",
        })  # fmt: skip
    return out
