"""The condition grid (profile x RT60 x SNR), every candidate scored on it, and the goals.

Issue #23's goals, checked for every candidate that could replace today's average (each array
kind, alone and with WebRTC NS, and WebRTC NS on the average):
- at 5 dB SNR, RT60 0.5 s: ≥ +6 dB SI-SDR and ≥ +0.05 STOI over the channel average, for the
  4-mic and 6-mic HATs;
- no worse than the channel average in any condition (tolerance `NO_WORSE_DB` SI-SDR and
  `NO_WORSE_STOI`: smaller differences are below what either metric resolves on a 30 s scene);
- the whole stage ≤ 0.01 CPU-s per audio-s (mean over a profile's conditions, costliest profile).

The oracle ceilings (`oracle`, names starting "oracle: ") are scored alongside but never
count as candidates: they know the answer, so they bound what a filter of their kind could do.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from devtools.farfield import candidates, metrics, oracle, scene
from edge_recorder.audio.vad import VadEngine, make_engine

SNRS_DB = (20.0, 10.0, 5.0, 0.0)
RT60S_S = (0.3, 0.5, 0.8)
GOAL_PROFILES = ("respeaker-4mic-array", "respeaker-6mic-array")
GOAL_RT60_S, GOAL_SNR_DB = 0.5, 5.0
GOAL_SI_SDR_DB, GOAL_STOI, GOAL_CPU = 6.0, 0.05, 0.01
NO_WORSE_DB, NO_WORSE_STOI = 0.5, 0.01
VAD_ENGINES = ("silero", "webrtc")
SPEECH_ONLY_SNR_DB = 300.0  # `scene.mix` at this SNR is the capture's speech alone


@dataclass(frozen=True)
class Result:
    """One candidate in one condition."""

    profile: str
    rt60_s: float
    snr_db: float
    candidate: str
    si_sdr_db: float
    si_sdr_early_db: float
    stoi: float
    f1_silero: float
    f1_webrtc: float
    cpu_s_per_audio_s: float
    lag_samples: int
    channel: int | None = None  # the oracle's pick


def _score(
    scn: scene.Scene, snr: float, name: str, output: Any, cpu: float, delay: int,
    engines: dict[str, VadEngine], channel: int | None = None,
) -> Result:  # fmt: skip
    s = metrics.score(scn.reference, output, delay, engines, scn.early)
    return Result(
        profile=scn.spec.profile,
        rt60_s=scn.spec.rt60_s,
        snr_db=snr,
        candidate=name,
        si_sdr_db=round(s.si_sdr_db, 2),
        si_sdr_early_db=round(s.si_sdr_early_db, 2),
        stoi=round(s.stoi, 3),
        f1_silero=s.f1["silero"],
        f1_webrtc=s.f1["webrtc"],
        cpu_s_per_audio_s=round(cpu / (output.size / scene.RATE), 5),
        lag_samples=s.lag,
        channel=channel,
    )


def evaluate_condition(
    scn: scene.Scene, snr: float, factories: list[candidates.Factory],
    engines: dict[str, VadEngine], with_ceilings: bool = True,
) -> list[Result]:  # fmt: skip
    """Every candidate on one mixture, plus the oracle single channel (the channel with the best
    SI-SDR, chosen after the fact: an upper bound for picking one mic, not a real candidate)
    and, last, the oracle ceilings of `oracle.ceilings`."""
    capture = scene.mix(scn, snr)
    results: list[Result] = []
    for factory in factories:
        candidate = factory.build(scn.positions_m)
        output, cpu = candidates.run(candidate, capture)
        results.append(
            _score(scn, snr, factory.name, output, cpu, candidate.delay_samples, engines)
        )
    best: tuple[float, int] | None = None
    for index in range(scn.channels):
        lag = metrics.best_lag(scn.reference, capture[:, index])
        value = metrics.si_sdr(*metrics.aligned(scn.reference, capture[:, index], lag))
        if best is None or value > best[0]:
            best = (value, index)
    assert best is not None
    single = candidates.SingleChannel(best[1])
    output, cpu = candidates.run(single, capture)
    results.insert(1, _score(scn, snr, candidates.ORACLE, output, cpu, 0, engines, best[1]))
    if with_ceilings:
        noise = capture - scene.mix(scn, SPEECH_ONLY_SNR_DB)
        for name, make in oracle.ceilings(scn, capture, noise):
            t = time.process_time()
            output = make()
            cpu = time.process_time() - t  # offline, whole scene: for the record only
            results.append(_score(scn, snr, name, output, cpu, 0, engines))
    return results


def evaluate(
    profiles: Iterable[str], rt60s: Iterable[float], snrs: Iterable[float], seconds: float,
    seed: int = 1,
) -> tuple[list[Result], str]:  # fmt: skip
    """All conditions; the note says whether the array package took part."""
    factories, note = candidates.factories()
    engines = {name: make_engine(name) for name in VAD_ENGINES}
    results: list[Result] = []
    for profile in profiles:
        for rt60 in rt60s:
            print(f"  far-field: {profile} RT60 {rt60:g} s", file=sys.stderr, flush=True)
            scn = scene.load(scene.SceneSpec(profile, rt60, seconds, seed))
            for snr in snrs:
                results += evaluate_condition(scn, snr, factories, engines)
    return results, note


def _find(results: list[Result], name: str, profile: str, rt60: float, snr: float) -> Result:
    return next(
        r
        for r in results
        if (r.candidate, r.profile, r.rt60_s, r.snr_db) == (name, profile, rt60, snr)
    )


def table(results: list[Result]) -> tuple[list[str], list[list[Any]]]:
    """Columns and rows: one row per condition x candidate, with the gain over the average."""
    columns = [
        "profile", "RT60 s", "SNR dB", "candidate", "SI-SDR dB", "Δ SI-SDR", "STOI", "Δ STOI",
        "SI-SDR early dB", "Δ early", "VAD F1 silero", "VAD F1 webrtc", "CPU-s/audio-s",
    ]  # fmt: skip
    rows: list[list[Any]] = []
    for r in results:
        avg = _find(results, candidates.AVERAGE, r.profile, r.rt60_s, r.snr_db)
        name = r.candidate if r.channel is None else f"{r.candidate}: ch {r.channel + 1}"
        rows.append(
            [
                r.profile, f"{r.rt60_s:g}", f"{r.snr_db:g}", name, f"{r.si_sdr_db:.2f}",
                f"{r.si_sdr_db - avg.si_sdr_db:+.2f}", f"{r.stoi:.3f}", f"{r.stoi - avg.stoi:+.3f}",
                f"{r.si_sdr_early_db:.2f}", f"{r.si_sdr_early_db - avg.si_sdr_early_db:+.2f}",
                f"{r.f1_silero:.3f}", f"{r.f1_webrtc:.3f}", f"{r.cpu_s_per_audio_s:.4f}",
            ]
        )  # fmt: skip
    return columns, rows


def goals(results: list[Result], note: str) -> list[dict[str, Any]]:
    """The issue's three goals for each replacement candidate (not the average, no oracle)."""
    names = list(dict.fromkeys(r.candidate for r in results))
    contenders = [n for n in names if n != candidates.AVERAGE and not oracle.is_oracle(n)]
    out: list[dict[str, Any]] = []
    if not any(n.startswith("array:") for n in contenders):
        out.append({"goal": "beamformers measured", "value": note, "met": False})
    for name in contenders:
        gains = []
        for profile in GOAL_PROFILES:
            try:
                r = _find(results, name, profile, GOAL_RT60_S, GOAL_SNR_DB)
            except StopIteration:
                continue
            a = _find(results, candidates.AVERAGE, profile, GOAL_RT60_S, GOAL_SNR_DB)
            gains.append((profile, r.si_sdr_db - a.si_sdr_db, r.stoi - a.stoi))
        if gains:
            met = all(d >= GOAL_SI_SDR_DB and s >= GOAL_STOI for _, d, s in gains)
            value = "; ".join(
                f"{p.removeprefix('respeaker-')} {d:+.1f} dB {s:+.3f}" for p, d, s in gains
            )
            out.append(
                {
                    "goal": f"{name}: ≥ +{GOAL_SI_SDR_DB:g} dB SI-SDR and ≥ +{GOAL_STOI:g} STOI "
                    f"over the average at {GOAL_SNR_DB:g} dB, RT60 {GOAL_RT60_S:g} s (4/6-mic)",
                    "value": value,
                    "met": met,
                }
            )
        mine = [r for r in results if r.candidate == name]
        worse = [
            r
            for r in mine
            if (a := _find(results, candidates.AVERAGE, r.profile, r.rt60_s, r.snr_db))
            and (r.si_sdr_db < a.si_sdr_db - NO_WORSE_DB or r.stoi < a.stoi - NO_WORSE_STOI)
        ]
        out.append(
            {
                "goal": f"{name}: no worse than the average in any condition "
                f"(SI-SDR within {NO_WORSE_DB:g} dB, STOI within {NO_WORSE_STOI:g})",
                "value": f"worse in {len(worse)} of {len(mine)}"
                + "".join(f"; {r.profile} {r.rt60_s:g}s {r.snr_db:g}dB" for r in worse[:4]),
                "met": not worse,
            }
        )
        # Per profile the mean over its conditions (one busy moment on a shared machine should
        # not decide), then the costliest profile (more mics cost more).
        cpu = max(mean_by(mine, "cpu_s_per_audio_s", profile=p) for p in {r.profile for r in mine})
        out.append(
            {
                "goal": f"{name}: ≤ {GOAL_CPU:g} CPU-s per audio-s (costliest profile's mean)",
                "value": round(cpu, 5),
                "met": cpu <= GOAL_CPU,
            }
        )
    return out


def as_dicts(results: list[Result]) -> list[dict[str, Any]]:
    return [asdict(r) for r in results]


def mean_by(results: list[Result], key: str, **where: Any) -> float:
    """Mean of a field over the results matching `where` (for summaries and the plot)."""
    values = [getattr(r, key) for r in results if all(getattr(r, k) == v for k, v in where.items())]
    return float(np.mean(values)) if values else float("nan")
