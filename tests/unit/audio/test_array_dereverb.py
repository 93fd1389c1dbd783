"""Dereverberation kinds (online WPE before / after the MVDR beam) and the batch size.

The reverberant scene is synthetic on purpose: bursts of speech-like noise from broadside,
each mic hearing the direct sound plus its own exponentially decaying diffuse tail
(RT60 0.5 s), so "late reverberation" is exactly the energy that follows a burst's end.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
import pytest

from edge_recorder.audio.array import make_array_processor
from edge_recorder.audio.array.stft import HOP
from tests.unit.audio.test_array_beams import FOUR, RATE, SIX
from tests.unit.audio.test_array_stream import talk

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]
WPE_KINDS = ["wpe-mvdr", "mvdr-wpe", "mvdr-wpe-postfilter"]
BURST_S, PERIOD_S = 0.3, 1.0
ECHO_LAG, ECHO_GAIN = 768, 0.8  # 48 ms (three hops), -1.9 dB per return


def flutter_echo(mics: int, seconds: float, seed: int) -> tuple[F32, list[int]]:
    """(n, mics) speech-band bursts in a room with a flutter echo (two parallel walls: the
    sound comes back every 48 ms, 2 dB weaker each time, so RT60 ≈ 1.4 s), and each burst's
    last sample. The echo is recursive, x(t) = s(t) + 0.8·x(t - 48 ms): exactly the
    structure linear prediction removes, so a working WPE must cut the tail deeply."""
    rng = np.random.default_rng(seed)
    n = int(seconds * RATE)
    period, burst = int(PERIOD_S * RATE), int(BURST_S * RATE)
    f = np.fft.rfftfreq(burst, 1 / RATE)
    band = (f > 100) & (f < 3500)  # the bins the WPE kinds dereverberate (≤ 4 kHz)
    wet = np.zeros(n)
    ends = []
    for start in range(RATE // 2, n - period, period):
        wet[start : start + burst] = np.fft.irfft(
            np.fft.rfft(rng.standard_normal(burst)) * band, burst
        )
        ends.append(start + burst)
    for s in range(ECHO_LAG, n, ECHO_LAG):  # block by block: each block echoes the finished one
        wet[s : s + ECHO_LAG] += ECHO_GAIN * wet[s - ECHO_LAG : s - ECHO_LAG + min(ECHO_LAG, n - s)]
    out = np.repeat(wet[:, None], mics, axis=1)  # from broadside: the beam passes it as it is
    out *= 0.05 / math.sqrt(float(np.mean(out**2)))
    return (out + 1e-4 * rng.standard_normal(out.shape)).astype(np.float32), ends


def tail_db(y: F32, delay: int, ends: list[int], after_s: float) -> float:
    """Energy 80-400 ms after each burst over the energy of the burst, in dB (late bursts)."""
    aligned = y[delay:]
    tail = burst = 0.0
    for end in ends:
        if end < after_s * RATE or end + int(0.4 * RATE) > aligned.size:
            continue
        tail += float(np.sum(aligned[end + int(0.08 * RATE) : end + int(0.4 * RATE)] ** 2))
        burst += float(np.sum(aligned[end - int(BURST_S * RATE) : end] ** 2))
    return 10 * math.log10(tail / burst)


@pytest.mark.parametrize("kind", [*WPE_KINDS, "das", "mvdr", "mvdr-postfilter"])
@pytest.mark.parametrize("batch", [2, 4, 8])
def test_an_impulse_comes_out_exactly_delay_samples_late_for_any_batch(
    kind: str, batch: int
) -> None:
    processor = make_array_processor(kind, SIX, RATE, batch)
    assert processor.delay_samples == batch * HOP + HOP - 1
    x = np.zeros((8000, 6), np.float32)
    x[3000] = 0.5
    y = processor.process(x)
    assert y.shape == (8000,) and y.dtype == np.float32
    assert int(np.argmax(np.abs(y))) == 3000 + processor.delay_samples
    assert y[3000 + processor.delay_samples] == pytest.approx(0.5, abs=1e-6)


@pytest.mark.parametrize("kind", [*WPE_KINDS, "mvdr", "mvdr-postfilter"])
def test_small_batches_stay_bit_exact_under_any_framing(kind: str) -> None:
    x = talk(SIX, 3.0, 4)

    def split(sizes: list[int]) -> F32:
        processor = make_array_processor(kind, SIX, RATE, 2)
        out, pos, i = [], 0, 0
        while pos < x.shape[0]:
            out.append(processor.process(x[pos : pos + sizes[i % len(sizes)]]))
            pos, i = pos + sizes[i % len(sizes)], i + 1
        return np.concatenate(out)

    whole = split([x.shape[0]])
    assert np.any(whole)
    rng = np.random.default_rng(9)
    assert np.array_equal(whole, split([int(v) for v in rng.integers(1, 1500, 60)] + [1] * 30))


def test_the_default_batch_is_unchanged() -> None:
    x = talk(FOUR, 3.0, 5)
    assert np.array_equal(
        make_array_processor("mvdr", FOUR).process(x),
        make_array_processor("mvdr", FOUR, RATE, 8).process(x),
    )


@pytest.mark.parametrize("kind", WPE_KINDS)
def test_dereverberation_cuts_the_late_tail_after_a_burst(kind: str) -> None:
    """Once converged (the last 12 of 20 s), the echo tail 80-400 ms after each burst drops
    by more than 20 dB against the same beam without WPE (measured: -7.8 → -37 dB)."""
    x, ends = flutter_echo(4, 20.0, 3)
    base = make_array_processor("mvdr", FOUR)
    derev = make_array_processor(kind, FOUR)
    before = tail_db(base.process(x), base.delay_samples, ends, after_s=8.0)
    after = tail_db(derev.process(x), derev.delay_samples, ends, after_s=8.0)
    assert before > -10.0  # the room rings: the tail is there to remove
    assert after < before - 20.0, (before, after)


@pytest.mark.parametrize("kind", ["das", "mvdr"])
def test_a_small_batch_adapts_exactly_like_the_default_one(kind: str) -> None:
    """Batch 2 (48 ms of latency) filters every 2 hops but adapts on the same 8-hop windows
    of the same spectra: the direction and the weights end up identical, so lowering the
    latency changes neither what adaptation sees nor its cost. (The WPE kinds adapt on
    signals filtered with the previous window's filter, so theirs differ slightly: measured
    on the far-field set instead.)"""
    x = talk(SIX, 3.0, 8)
    small = make_array_processor(kind, SIX, RATE, 2)
    default = make_array_processor(kind, SIX, RATE)
    small.process(x)
    default.process(x)
    assert np.array_equal(small.weights, default.weights)  # type: ignore[attr-defined]
    assert np.array_equal(small.tracker.direction, default.tracker.direction)  # type: ignore[attr-defined]
    assert small.tracker.steered  # type: ignore[attr-defined]
