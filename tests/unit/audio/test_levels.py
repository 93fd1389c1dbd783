"""The idle meter against the full DSP: the readings the status shows between recordings.

Tolerances: clipping counts and the digital-silence state and run are computed on the same raw
frames by the same code, so they must be equal. Level and peak differ by design (native rate,
mean removed, instead of 16 kHz after soxr and the 20 Hz high-pass): for room-like sound (hum,
speech-band noise, a tone, a DC offset) the RMS must agree within 0.25 dB and the peak within
1 dB (measured: 0.03 dB and 0.23 dB; the resampler's and the high-pass's ringing moves
single-sample peaks; a level meter on a dashboard is read in whole dB). A missing gain (12 dB)
or an unremoved offset would be far outside both.
"""

from __future__ import annotations

import numpy as np
import pytest

from edge_recorder.audio.dsp import Dsp, MeterTotals, dbfs
from edge_recorder.audio.frames import AudioFormat, Frames
from edge_recorder.audio.levels import IdleMeter
from edge_recorder.config.model import AudioConfig
from tests.unit.audio.test_dsp import config_for, encode

FORMATS = [
    AudioFormat(16000, 4, "S32_LE"),  # the reference profile: no resampling
    AudioFormat(48000, 2, "S16_LE"),  # the resampling path
    AudioFormat(44100, 2, "S24_LE"),
]


def room(fmt: AudioFormat, seconds: float, seed: int, dc: float = 0.02) -> np.ndarray:
    """Speech-band noise + 120 Hz hum + a 1 kHz tone + a DC offset, per channel (frames, ch)."""
    rng = np.random.default_rng(seed)
    n = int(fmt.rate * seconds)
    spectrum = np.fft.rfft(rng.standard_normal(n))
    freqs = np.fft.rfftfreq(n, 1 / fmt.rate)
    spectrum[(freqs < 100) | (freqs > 4000)] = 0
    band = np.fft.irfft(spectrum, n)
    band *= 0.05 / band.std()
    t = np.arange(n) / fmt.rate
    mono = band + 0.03 * np.sin(2 * np.pi * 120 * t) + 0.1 * np.sin(2 * np.pi * 1000 * t) + dc
    gains = np.linspace(1.0, 0.8, fmt.channels)
    return mono[:, None] * gains[None, :]


def blocks_of(data: bytes, fmt: AudioFormat, frames: int) -> list[Frames]:
    step = frames * fmt.frame_bytes
    return [
        Frames(data[i : i + step], fmt, i // fmt.frame_bytes) for i in range(0, len(data), step)
    ]


def full_dsp(config: AudioConfig, fmt: AudioFormat, blocks: list[Frames]) -> MeterTotals:
    dsp = Dsp(config, fmt)
    for block in blocks:
        dsp.process(block)
    return dsp.totals


@pytest.mark.parametrize("fmt", FORMATS, ids=str)
@pytest.mark.parametrize("gain_db", [0.0, 12.0])
def test_level_and_peak_match_the_full_pipeline_within_tolerance(
    fmt: AudioFormat, gain_db: float
) -> None:
    config = config_for(fmt, gain_db=gain_db)
    data = encode(room(fmt, 2.0, seed=5), fmt)
    blocks = blocks_of(data, fmt, fmt.rate // 8)
    settle = 4  # the high-pass needs a moment to remove the DC offset: compare after it
    totals = full_dsp(config, fmt, blocks)
    warm = full_dsp(config, fmt, blocks[:settle])
    full_rms = dbfs(
        np.sqrt((totals.sum_squares - warm.sum_squares) / (totals.samples - warm.samples))
    )
    meter = IdleMeter(config, fmt)
    meter.measure(blocks[:settle])
    idle = meter.measure(blocks[settle:])
    assert idle is not None
    assert idle.rms_dbfs == pytest.approx(full_rms, abs=0.25)
    assert idle.peak_dbfs == pytest.approx(dbfs(totals.peak), abs=1.0)
    assert idle.rms_dbfs > -40  # a real reading, not the floor both would agree on


def test_a_dc_offset_alone_reads_as_silence_not_as_level() -> None:
    fmt = FORMATS[0]
    config = config_for(fmt)
    rng = np.random.default_rng(1)
    samples = 0.2 + 1e-4 * rng.standard_normal((fmt.rate, fmt.channels))  # offset, faint hiss
    meters = IdleMeter(config, fmt).measure(blocks_of(encode(samples, fmt), fmt, 2000))
    assert meters is not None and meters.rms_dbfs < -75 and meters.peak_dbfs < -65


@pytest.mark.parametrize("fmt", FORMATS, ids=str)
def test_clipping_and_digital_silence_equal_the_full_pipeline(fmt: AudioFormat) -> None:
    """Clipped input, a dead stretch long enough to alarm and one too short, in odd blocks."""
    config = config_for(fmt, digital_silence_s=0.5)
    live = room(fmt, 0.4, seed=2) * 12  # clips hard
    dead = np.zeros((int(fmt.rate * 0.7), fmt.channels))
    short = np.full((int(fmt.rate * 0.3), fmt.channels), 0.25)  # a stuck value, not long enough
    stream = np.concatenate([live, dead, room(fmt, 0.3, seed=3), short, room(fmt, 0.2, seed=4)])
    blocks = blocks_of(encode(stream, fmt), fmt, 997)
    dsp, meter = Dsp(config, fmt), IdleMeter(config, fmt)
    states = []
    for block in blocks:
        _, want = dsp.process(block)
        got = meter.measure([block])
        assert got is not None
        assert (got.clipped_in, got.digital_silence, got.silence_run_s) == (
            want.clipped_in,
            want.digital_silence,
            want.silence_run_s,
        )
        states.append(got.digital_silence)
    assert dsp.totals.clipped_in > 1000
    assert True in states and states[-1] is False  # the alarm rose and cleared
    # one batch gives the same totals as block by block
    batch = IdleMeter(config, fmt).measure(blocks)
    assert batch is not None and batch.clipped_in == dsp.totals.clipped_in


def test_frames_to_silence_counts_down_a_constant_run() -> None:
    fmt = AudioFormat(16000, 1, "S16_LE")
    meter = IdleMeter(config_for(fmt, digital_silence_s=1.0), fmt)
    live = encode(room(fmt, 0.1, seed=9), fmt)
    meter.measure([Frames(live, fmt, 0)])
    assert meter.frames_to_silence() is None  # a live mic: no run under way
    meter.measure([Frames(bytes(2 * 4000), fmt, 1600)])
    assert meter.frames_to_silence() == 16000 - 4000  # 0.25 s of zeros: 0.75 s to go
    meter.measure([Frames(bytes(2 * 12000), fmt, 5600)])
    assert meter.frames_to_silence() is None  # the alarm is up


def test_frames_in_another_format_are_refused() -> None:
    fmt = AudioFormat(16000, 1, "S16_LE")
    meter = IdleMeter(config_for(fmt), fmt)
    other = AudioFormat(48000, 1, "S16_LE")
    with pytest.raises(ValueError, match="meter expects"):
        meter.measure([Frames(bytes(4), other, 0)])
    assert meter.measure([Frames(b"", fmt, 0)]) is None
