"""The whole audio pipeline's CPU for each array profile as it ships (the issue's budget).

The evaluation times each candidate's array stage alone (8-hop batches, 120 ms chunks); the
goal is about the whole pipeline a device runs: capture integers → resample, the profile's
beam at its `array_batch_hops`, DC → Silero VAD → PCM16, fed one capture period
(`audio.period_ms`) at a time, exactly as `Pipeline` runs in the daemon. The input is the
profile's native format, a conversation: in the loud stretches a talker (Gaussian noise, as
a plane wave) at one place, then another, turn by turn, over uncorrelated noise in every
channel, so the VAD and the beam's speech/noise gate see speech and pauses, the direction
tracker follows the turns and the beams re-steer (or the calibrated beam changes spots) as
they would in a room. (Plain modulated noise, the input until 2026-12-07, never moved the
tracker and read ~1 ms/s low for the blind beams; it also put the calibrated beam at no spot,
where it changed spots about once a second.) `calibrated_spots` measures the opt-in
`calibrated` kind instead, with a synthetic calibration of that many spots, the talkers on
the first two. The figure is the least of `REPEATS` runs: on a shared machine a
neighbour's load inflates process CPU time (one run read 0.0088, the next 0.0120 for the
same work), never deflates it. Each figure carries the machine's speed at the time
(`benchmarks/_machine.py`, measured in the same child just before).
"""

from __future__ import annotations

import multiprocessing
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from benchmarks import _machine
from edge_recorder.audio.array.calibration_file import ArrayCalibration, Spot, save_calibration
from edge_recorder.audio.array.geometry import arrival_times, direction
from edge_recorder.audio.array.spots import free_field
from edge_recorder.audio.frames import AudioFormat, Frames
from edge_recorder.audio.pipeline import Pipeline
from edge_recorder.config.hardware import all_profiles
from edge_recorder.config.loader import build_config

F64 = npt.NDArray[np.float64]

SECONDS = 20.0
REPEATS = 3
BUDGET_CPU_PER_S = 0.01


@dataclass(frozen=True)
class ShippedCpu:
    profile: str
    kind: str
    batch_hops: int
    period_ms: int
    cpu_per_s: float
    stages: dict[str, float]  # dsp, vad, encode: CPU-s per audio-s
    machine_reference_ms: float  # benchmarks/_machine.py in the same process, just before


def array_profiles() -> list[str]:
    """Profiles that ship a beam (a known geometry and a kind other than the plain mix)."""
    return sorted(
        name
        for name, p in all_profiles().items()
        if p.audio.get("array_processing", "average") != "average"
    )


def measure(
    profile: str, seconds: float = SECONDS, repeats: int = REPEATS, calibrated_spots: int = 0
) -> ShippedCpu:
    """The least process CPU of `repeats` Pipelines over `seconds` of native input each,
    run in a fresh child process as a device runs it: in a process that has already done
    multithreaded BLAS work (bench_farfield's evaluation before it) OpenBLAS's woken threads
    inflated the same pipeline's CPU by ~40 % (0.0144 against 0.0095), although the VAD
    limits BLAS to one thread."""
    with tempfile.TemporaryDirectory() as tmp:
        audio: dict[str, object] = {"profile": profile, "source": "synthetic"}
        if calibrated_spots:
            path = Path(tmp) / "array-calibration.npz"
            positions = build_config({"audio": audio}, environ={}).audio.mic_positions_mm
            save_calibration(path, synthetic_calibration(positions, calibrated_spots))
            audio |= {"array_processing": "calibrated", "array_calibration": str(path)}
        spawn = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=1, mp_context=spawn) as child:
            runs = list(child.map(_once, [audio] * repeats, [seconds] * repeats))
    return min(runs, key=lambda r: r.cpu_per_s)


def synthetic_calibration(
    mic_positions_mm: list[tuple[float, float, float]], spots: int
) -> ArrayCalibration:
    """`spots` plane-wave spots 40° apart with a diffuse share in Ψ: a valid calibration
    for timing the `calibrated` kind (what it holds does not change the work)."""
    positions = np.asarray(mic_positions_mm, np.float64) / 1000.0
    freqs = np.arange(257) * 16000.0 / 512
    made = []
    for k in range(spots):
        arrivals = arrival_times(positions, synthetic_spot(k)[None])[0]
        arrivals = arrivals - arrivals.mean()
        h = free_field(arrivals, freqs)
        psi = h[:, :, None] * h[:, None, :].conj() + 0.5 * np.eye(positions.shape[0])
        made.append(Spot(f"spot-{k}", h, psi, arrivals))
    return ArrayCalibration(tuple(made), positions, 16000, "2026-01-01T00:00:00Z")


def synthetic_spot(k: int) -> F64:
    """The direction of `synthetic_calibration`'s spot k (40° apart, 20° up)."""
    return direction(40.0 * k, 20.0)


def _talking(
    positions_m: F64, rate: int, talkers: F64, speaking: npt.NDArray[np.bool_], source: F64
) -> F64:
    """(n, M) mics hearing `source` as a plane wave from talkers[turn], a new turn at each
    loud stretch of `speaking` (fractional delays by a phase ramp)."""
    n = source.size
    turn = np.cumsum(np.diff(speaking.astype(np.int8), prepend=0) == 1) - 1
    freqs = np.fft.rfftfreq(n, 1.0 / rate)
    mics = np.zeros((n, positions_m.shape[0]))
    for k, u in enumerate(talkers):
        part = np.where(speaking & (turn % len(talkers) == k), source, 0.0)
        spectrum = np.fft.rfft(part)
        for m, t in enumerate(arrival_times(positions_m, u)):
            mics[:, m] += np.fft.irfft(spectrum * np.exp(-2j * np.pi * freqs * t), n)
    return mics


def _once(audio_section: dict[str, object], seconds: float) -> ShippedCpu:
    """Process CPU of one Pipeline over `seconds` of the profile's native input (the
    conversation of the module doc, between `synthetic_spot` 0 and 1)."""
    profile = str(audio_section["profile"])
    cfg = build_config({"audio": audio_section}, environ={})
    audio = cfg.audio
    fmt = AudioFormat(rate=audio.rate, channels=audio.channels, sample_format=audio.format)
    bits, dtype = (15, "<i2") if audio.format == "S16_LE" else (31, "<i4")
    rng = np.random.default_rng(1)
    n = int(audio.rate * seconds)
    speaking = np.sin(np.arange(n) / audio.rate * 2 * np.pi * 0.3) > 0
    positions = np.asarray(audio.mic_positions_mm, np.float64).reshape(-1, 3) / 1000.0
    talkers = np.stack([synthetic_spot(0), synthetic_spot(1)])
    data = rng.standard_normal((n, audio.channels)) * 0.2
    speech = _talking(positions, audio.rate, talkers, speaking, rng.standard_normal(n))
    data[:, : positions.shape[0]] += speech
    data *= 0.02 * 2**bits
    samples = data.astype(dtype)
    period = audio.rate * audio.period_ms // 1000
    pipeline = Pipeline(fmt, cfg.audio, cfg.vad, cfg.encoding)
    reference = _machine.reference_ms()
    start_cpu = time.process_time()
    for start in range(0, n, period):
        block = samples[start : start + period].tobytes()
        pipeline.process(Frames(data=block, format=fmt, start_frame=start))
    pipeline.finish()
    cpu = time.process_time() - start_cpu
    return ShippedCpu(
        profile=profile,
        kind=audio.array_processing,
        batch_hops=audio.array_batch_hops,
        period_ms=audio.period_ms,
        cpu_per_s=round(cpu / seconds, 5),
        stages={k: round(v / seconds, 5) for k, v in pipeline.stats.cpu_s.items()},
        machine_reference_ms=reference,
    )
