"""The honest evaluation of spot calibration (issue #23): is a calibrated beam worth a product
feature? Unlike `calibrated.py` (the talker's own speech as calibration signal, one shared
noise field, the true talker per frame), here

- the calibration is a 5 s exponential sweep (150 Hz-7 kHz) from a small loudspeaker (its own
  band-pass and a +4 dB presence peak, which must not end up in the filter) at each talker's
  spot, started at an unknown moment, recorded with its own realisation of the room's noise
  at `CAL_SNR_DB`; also the spot plus four points 5 or 10 cm around it, pooled ("region");
- the test scene is a fresh 30 s conversation with a fresh noise realisation, both talkers
  moved by 0/5/10/20 cm in a random 3-D direction (their mouth height changes too);
- the beam (`calibration.CalibratedBeam`) picks the spot itself and estimates the noise
  from the shipped speech gate's noise frames, fed in 120 ms chunks like every candidate.

Scored like the main evaluation (SI-SDR against the anechoic talkers at the array centre,
STOI), as gains over the channel average, beside the shipped blind kinds (`mvdr-postfilter`,
`mvdr-wpe-postfilter`).
Run: `python -m benchmarks.bench_farfield --calibration-honest`.
"""

from __future__ import annotations

import importlib
import math
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from benchmarks import _audio
from devtools.farfield import calibration, candidates, geometry, metrics, noise, oracle, scene
from edge_recorder.audio.array import make_array_processor
from edge_recorder.audio.array import spots as device_spots
from edge_recorder.audio.array.calibration_file import ArrayCalibration, Spot
from edge_recorder.audio.array.stft import BATCH

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]
RATE = scene.RATE
MOVES_M = (0.0, 0.05, 0.10, 0.20)
CAL_SNR_DB = 15.0
SWEEP_S = 5.0
REGIONS_M = (0.05, 0.10)  # "region" calibrations: the spot and 4 points this far around
MAX_ELEVATION_DEG = 30.0  # a move's direction: any azimuth, up to this far up or down
SHIPPED = ("mvdr-postfilter", "mvdr-wpe-postfilter")  # the profiles' blind kinds
DESIGNS = {"spot": calibration.DESIGNS}  # beams per calibration (regions: REGION_DESIGNS)
REGION_DESIGNS = ("mwf",)
DEVICE_REGION_M = 0.05  # the shipped procedure: the spot and 4 points ~5 cm around it
DEVICE_BATCH = 2  # as the array profiles ship (array_batch_hops)


def _signal() -> Any:
    """scipy.signal, untyped: imported by name (as scene.py does pyroomacoustics)."""
    return importlib.import_module("scipy.signal")


def loudspeaker(signal: F64) -> F64:
    """A small loudspeaker: 2nd-order high-pass at 150 Hz, 4th-order low-pass at 7 kHz and a
    +4 dB peak at 2.5 kHz (Q 1): a response the calibrated filter must not learn."""
    sps = _signal()
    hp = sps.butter(2, 150.0, "highpass", fs=RATE, output="sos")
    lp = sps.butter(4, 7000.0, "lowpass", fs=RATE, output="sos")
    a_gain, w0, q = 10 ** (4.0 / 40), 2 * math.pi * 2500.0 / RATE, 1.0
    alpha = math.sin(w0) / (2 * q)
    b = [1 + alpha * a_gain, -2 * math.cos(w0), 1 - alpha * a_gain]
    a = [1 + alpha / a_gain, -2 * math.cos(w0), 1 - alpha / a_gain]
    peak = np.concatenate([np.divide(b, a[0]), np.divide(a, a[0])])[None]
    return np.asarray(sps.sosfilt(np.vstack([hp, lp, peak]), signal), np.float64)


def _moved(position: tuple[float, float, float], offset: F64) -> list[float]:
    return [float(p + o) for p, o in zip(position, offset, strict=True)]


def _direction(rng: np.random.Generator) -> F64:
    azimuth = rng.uniform(0, 2 * math.pi)
    elevation = math.radians(rng.uniform(-MAX_ELEVATION_DEG, MAX_ELEVATION_DEG))
    return np.array(
        [
            math.cos(elevation) * math.cos(azimuth),
            math.cos(elevation) * math.sin(azimuth),
            math.sin(elevation),
        ]
    )


def _convolve(x: F64, rirs: list[F64], n: int) -> F64:
    sps = _signal()
    return np.stack([sps.oaconvolve(x, r)[:n] for r in rirs])


@dataclass
class Layout:
    """Every room response one (profile, seed) needs, simulated once."""

    profile: str
    seed: int
    board: F64  # (M, 3)
    spot_rirs: list[list[F64]]  # [talker][mic]
    region_rirs: dict[float, list[list[list[F64]]]]  # radius → [talker][point][mic]
    moved_rirs: dict[float, list[list[F64]]]  # move → [talker][mic]
    direct: dict[float, list[F64]]  # move → [talker] direct path at the centre
    vent_rirs: list[F64]  # [mic]


def simulate(
    profile: str, seed: int, rt60_s: float, regions: tuple[float, ...] = REGIONS_M
) -> Layout:
    """The room responses: spots, region points, moved talkers, the vent; direct paths."""
    board = geometry.board_positions_m(profile)
    mics = geometry.board_to_room(board)
    m = mics.shape[0]
    talkers = geometry.place_talkers(seed)
    spots = [t.position() for t in talkers]
    rng = np.random.default_rng([seed, 31])
    directions = [_direction(rng) for _ in talkers]
    sources: list[list[float]] = [list(p) for p in spots]
    for radius in regions:
        for p in spots:
            for q in range(4):
                a = q * math.pi / 2 + 0.3
                sources.append(_moved(p, radius * np.array([math.cos(a), math.sin(a), 0.0])))
    moves = [d for d in MOVES_M if d > 0]
    for d in moves:
        for p, u in zip(spots, directions, strict=True):
            sources.append(_moved(p, d * u))
    sources.append(list(geometry.VENT_M))
    room = scene._room(rt60_s)
    for s in sources:
        room.add_source(s)
    room.add_microphone_array(np.asarray(mics, np.float64).T)
    room.compute_rir()
    rir = [[np.asarray(room.rir[i][j], np.float64) for i in range(m)] for j in range(len(sources))]
    anechoic = scene._room(rt60_s, max_order=0)
    tests = [list(p) for p in spots] + sources[len(sources) - 1 - 2 * len(moves) : -1]
    for s in tests:
        anechoic.add_source(s)
    anechoic.add_microphone_array(np.asarray([geometry.DEVICE_M], np.float64).T)
    anechoic.compute_rir()
    direct_all = [np.asarray(anechoic.rir[0][j], np.float64) for j in range(len(tests))]
    r0 = 2 + 8 * len(regions)
    moved_rirs = {0.0: rir[:2]}
    direct = {0.0: direct_all[:2]}
    for i, d in enumerate(moves):
        moved_rirs[d] = rir[r0 + 2 * i : r0 + 2 * i + 2]
        direct[d] = direct_all[2 + 2 * i : 4 + 2 * i]
    region_rirs = {
        radius: [rir[2 + 8 * i + 4 * k : 6 + 8 * i + 4 * k] for k in range(2)]
        for i, radius in enumerate(regions)
    }
    return Layout(profile, seed, board, rir[:2], region_rirs, moved_rirs, direct, rir[-1])


def _room_noise(layout: Layout, n: int, rng: np.random.Generator) -> F64:
    """Diffuse HVAC + the vent fan 6 dB below it, unit power at the reference mic."""
    fan = _convolve(noise.fan(n, RATE, rng).astype(np.float64), layout.vent_rirs, n)
    fan /= np.sqrt(np.mean(fan[scene.REFERENCE_MIC] ** 2))
    hvac = noise.diffuse(layout.board, n, RATE, rng).astype(np.float64)
    total = hvac + fan * 10 ** (scene.POINT_NOISE_DB / 20)
    return np.asarray(total / np.sqrt(np.mean(total[scene.REFERENCE_MIC] ** 2)), np.float64)


def record_calibration(layout: Layout, rirs: list[F64], salt: int, snr_db: float) -> F64:
    """(M, N) what the device hears while the technician's loudspeaker plays the sweep at a
    point: a random start (0.3-0.8 s), 1 s after it, the room's noise (own realisation)."""
    rng = np.random.default_rng([layout.seed, 101, salt])
    played = loudspeaker(device_spots.sweep(SWEEP_S))
    start = int(rng.uniform(0.3, 0.8) * RATE)
    n = start + played.size + RATE
    emitted = np.zeros(n)
    emitted[start : start + played.size] = played
    heard = _convolve(emitted, rirs, n)
    power = float(np.mean(heard[scene.REFERENCE_MIC, start : start + played.size] ** 2))
    room_noise = _room_noise(layout, n, rng)
    return np.asarray(heard + room_noise * math.sqrt(power / 10 ** (snr_db / 10)), np.float64)


def calibrate(layout: Layout, snr_db: float, region_m: float | None = None) -> list[Spot]:
    """What `edge-recorder calibrate-array` would store: one Spot per talker spot (measured
    there, and with `region_m` at 4 more points that far around it, pooled)."""
    played = device_spots.sweep(SWEEP_S)  # the device knows the file, not the loudspeaker
    spots = []
    for k in range(2):
        around = layout.region_rirs[region_m][k] if region_m else []
        points = [layout.spot_rirs[k], *around]
        measured = [
            device_spots.measure_responses(
                record_calibration(layout, p, 10 * k + i, snr_db), played
            )
            for i, p in enumerate(points)
        ]
        spots.append(calibration.spot_statistics(measured))
    return spots


def device_calibration(
    layout: Layout, snr_db: float, talkers: tuple[int, ...] = (0, 1)
) -> ArrayCalibration:
    """What `edge-recorder calibrate-array` writes, made by the device's own code
    (`edge_recorder.audio.array.spots`) from the same simulated sweep recordings as
    `calibrate` with `DEVICE_REGION_M`: the spot and 4 points around it, pooled."""
    played = device_spots.sweep(SWEEP_S)
    made = []
    for k in talkers:
        points = [layout.spot_rirs[k], *layout.region_rirs[DEVICE_REGION_M][k]]
        measured = [
            device_spots.measure_responses(
                record_calibration(layout, p, 10 * k + i, snr_db), played
            )
            for i, p in enumerate(points)
        ]
        made.append(device_spots.spot_from_responses(f"spot-{k}", measured))
    return ArrayCalibration(
        spots=tuple(made), positions_m=layout.board, rate=RATE, created="2026-01-01T00:00:00Z"
    )


def test_scene(layout: Layout, move: float, seconds: float) -> scene.Scene:
    """A fresh conversation (another seed's sentences) with fresh noise, talkers moved."""
    n = int(seconds * RATE)
    dry = np.stack(scene.conversation(seconds, 1000 + layout.seed)).astype(np.float64)
    rirs = layout.moved_rirs[move]
    speech = sum(_convolve(dry[k], rirs[k], n) for k in range(2))
    reference = sum(_convolve(dry[k], [layout.direct[move][k]], n)[0] for k in range(2))
    room_noise = _room_noise(layout, n, np.random.default_rng([layout.seed, 211]))
    ref32 = np.asarray(reference, np.float32)
    return scene.Scene(
        spec=scene.SceneSpec(layout.profile, 0.5, seconds, layout.seed),
        speech=np.asarray(speech, np.float32),
        noise=room_noise.astype(np.float32),
        reference=ref32,
        early=ref32,
        dry=dry.astype(np.float32),
        labels=_audio.labels_of(ref32),
        positions_m=layout.board,
    )


def _scores(reference: F32, output: F32, delay: int) -> tuple[float, float]:
    lag = metrics.best_lag(reference, output, centre=delay)
    ref, est = metrics.aligned(reference, output, lag)
    return metrics.si_sdr(ref, est), metrics.stoi(ref, est)


def _batch_talkers(scn: scene.Scene) -> list[int]:
    """The talker of each 8-hop batch (majority of its frames): the oracle's pick."""
    who = oracle.talker_frames(scn.dry, oracle.stft(scn.reference).shape[0])
    batch = BATCH
    return [int(np.bincount(who[i : i + batch]).argmax()) for i in range(0, who.size, batch)]


def _selection_accuracy(beam: calibration.CalibratedBeam, scn: scene.Scene) -> float:
    """Share of speech hops in which the beam used the talking talker's spot."""
    t = oracle.stft(scn.reference).shape[0]
    who = oracle.talker_frames(scn.dry, t)
    hops = np.repeat(np.asarray(beam.choices), beam.batch)[:t]
    hop_labels = np.minimum(np.arange(hops.size) * 256 // _audio.LABEL_HOP, scn.labels.size - 1)
    speech = scn.labels[hop_labels]
    return float(np.mean(hops[speech] == who[: hops.size][speech]))


def evaluate_layout(
    layout: Layout, seconds: float, snr_db: float, calibrations: dict[str, list[Any]],
    device: dict[str, ArrayCalibration] | None = None,
) -> list[dict[str, Any]]:  # fmt: skip
    """Every move: SI-SDR / STOI gains over the average for shipped kinds and calibrated beams
    (the prototype's, and the device's `calibrated` kind at the profiles' 2-hop batches)."""
    module = candidates.array_module()[0]
    rows = []
    for move in MOVES_M:
        scn = test_scene(layout, move, seconds)
        capture = scene.mix(scn, snr_db)
        ref = scn.reference
        base_sdr, base_stoi = _scores(ref, np.asarray(capture.mean(axis=1), np.float32), 0)
        row: dict[str, Any] = {
            "profile": layout.profile, "seed": layout.seed, "move_cm": round(move * 100),
            "average": (round(base_sdr, 2), round(base_stoi, 3)),
        }  # fmt: skip
        named: list[tuple[str, Any]] = []
        if module is not None:
            named += [(k, module.make_array_processor(k, layout.board, RATE)) for k in SHIPPED]
        truth = _batch_talkers(scn)
        for cal_name, spots in calibrations.items():
            for design in DESIGNS.get(cal_name, REGION_DESIGNS):
                named.append((f"{cal_name} {design}", calibration.CalibratedBeam(spots, design)))
            if cal_name == "spot":
                forced = calibration.CalibratedBeam(spots, "mwf", forced=truth)
                named.append(("spot mwf, true pick", forced))
        for dev_name, made in (device or {}).items():
            beam = make_array_processor(
                "calibrated", layout.board, RATE, DEVICE_BATCH, calibration=made
            )
            named.append((dev_name, beam))
        if device:
            blind = make_array_processor("mvdr-wpe-postfilter", layout.board, RATE, DEVICE_BATCH)
            named.append(("mvdr-wpe-postfilter, 2-hop batches", blind))
        for name, processor in named:
            output, cpu = candidates.run(processor, capture)
            sdr, stoi = _scores(ref, output, processor.delay_samples)
            row[name] = (round(sdr - base_sdr, 2), round(stoi - base_stoi, 3))
            row[f"{name} cpu"] = round(cpu / seconds, 5)
            if isinstance(processor, calibration.CalibratedBeam) and "true" not in name:
                row[f"{name} picks"] = round(_selection_accuracy(processor, scn), 3)
        rows.append(row)
        print(f"  calib: {layout.profile} seed {layout.seed} {move * 100:g} cm", file=sys.stderr)
    return rows


def run(
    profiles: Iterable[str], seeds: Iterable[int], seconds: float = 30.0, snr_db: float = 5.0,
    rt60_s: float = 0.5, cal_snr_db: float = CAL_SNR_DB, regions: tuple[float, ...] = REGIONS_M,
    prototypes: bool = True,
) -> list[dict[str, Any]]:  # fmt: skip
    """All (profile, seed, move) rows; without `prototypes` only the device's beams and the
    prototype's best (the 5 cm region's mwf) beside the blind kinds."""
    rows = []
    for profile in profiles:
        for seed in seeds:
            t = time.process_time()
            layout = simulate(profile, seed, rt60_s, regions if prototypes else (DEVICE_REGION_M,))
            cals = {"spot": calibrate(layout, cal_snr_db)} if prototypes else {}
            for radius in regions if prototypes else (DEVICE_REGION_M,):
                cals[f"region {radius * 100:g} cm"] = calibrate(layout, cal_snr_db, radius)
            device = {}
            if DEVICE_REGION_M in regions:
                device = {
                    "device calibrated": device_calibration(layout, cal_snr_db),
                    "device calibrated, 1st talker's spot only": device_calibration(
                        layout, cal_snr_db, (0,)
                    ),
                }
            rows += evaluate_layout(layout, seconds, snr_db, cals, device)
            print(
                f"  calib: {profile} seed {seed}: {time.process_time() - t:.0f} s", file=sys.stderr
            )
    return rows


def summary(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per profile, move and candidate: mean, min and max of the gains, and the share of
    (seed) cases no worse than the average (SI-SDR within 0.5 dB, STOI within 0.01)."""
    out = []
    keys = [k for k in rows[0] if isinstance(rows[0][k], tuple) and k != "average"]
    for profile in dict.fromkeys(r["profile"] for r in rows):
        for move in MOVES_M:
            mine = [
                r for r in rows if r["profile"] == profile and r["move_cm"] == round(move * 100)
            ]
            for key in keys:
                sdr = np.array([r[key][0] for r in mine])
                stoi = np.array([r[key][1] for r in mine])
                ok = np.mean((sdr >= -0.5) & (stoi >= -0.01))
                picks = [r[f"{key} picks"] for r in mine if f"{key} picks" in r]
                out.append({
                    "profile": profile.removeprefix("respeaker-"), "move cm": round(move * 100),
                    "candidate": key, "n": len(mine),
                    "SI-SDR mean": round(float(sdr.mean()), 2),
                    "SI-SDR min..max": f"{sdr.min():+.1f}..{sdr.max():+.1f}",
                    "STOI mean": round(float(stoi.mean()), 3),
                    "STOI min..max": f"{stoi.min():+.3f}..{stoi.max():+.3f}",
                    "no worse": f"{ok:.0%}",
                    "spot picked": f"{np.mean(picks):.0%}" if picks else "",
                    "CPU": round(float(np.mean([r[f"{key} cpu"] for r in mine])), 4),
                })  # fmt: skip
    return out
