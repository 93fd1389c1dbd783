"""How fast this machine is right now: one fixed workload's CPU time, to read CPU figures by.

The CPU goals hold "on this machine", a shared 2-core VM whose speed drifts with its
neighbours. On 2026-12-07 the same shipped 4-mic pipeline read 0.0094 CPU-s per audio-s in
one session and 0.017-0.023 two hours later, with no change to the code. A CPU figure
therefore travels with this reference, measured in the same process just before it: the
same figure at a higher reference is a slower machine, not slower code.

The workload is what the audio pipeline's cost is made of: small numpy calls (an STFT
batch's transforms and per-bin weighting, on the 4-mic HAT's shapes) and plain Python.
"""

from __future__ import annotations

import time

import numpy as np

REPEATS = 5
ROUNDS = 300


def describe() -> dict[str, object]:
    """The CPU as the kernels see it: the model, whether it has AVX-512, and which OpenBLAS
    kernels numpy picked (the VM is not always the same host: on 2026-12-07 one with only
    AVX2, whose "Haswell" kernels rounded float32 sums differently from earlier sessions'
    machines, ran the pipeline ~2x slower)."""
    from threadpoolctl import threadpool_info  # type: ignore[import-untyped]

    model, flags = "unknown", ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            for line in info:
                key, _, value = line.partition(":")
                if key.strip() == "model name" and model == "unknown":
                    model = value.strip()
                elif key.strip() == "flags" and not flags:
                    flags = value
    except OSError:
        pass
    kernels = [str(i.get("architecture")) for i in threadpool_info() if i.get("user_api") == "blas"]
    return {"model": model, "avx512": "avx512f" in flags.split(), "openblas": kernels}


def reference_ms(repeats: int = REPEATS) -> float:
    """The least CPU time (ms) of `repeats` runs of the fixed workload."""
    return min(_once() for _ in range(repeats))


def _once() -> float:
    rng = np.random.default_rng(0)
    frames = rng.standard_normal((1, 4, 2, 512))
    window = np.hanning(512)
    weights = rng.standard_normal((257, 4)) + 1j * rng.standard_normal((257, 4))
    start = time.process_time()
    for _ in range(ROUNDS):
        spectra = np.fft.rfft(frames * window, axis=-1)
        beam = np.einsum("kmbf,fm->kbf", spectra, weights.conj())
        power = beam.real**2 + beam.imag**2
        beam *= np.maximum(power / (power + 1.0), 0.25)
        np.fft.irfft(beam, n=512, axis=-1)
    total = 0
    for i in range(100 * ROUNDS):
        total += i & 7
    return round((time.process_time() - start) * 1000.0, 2)
