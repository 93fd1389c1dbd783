"""DSP: block-size invariance (bit-exact), filters, gain and meters."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge_recorder.audio.dsp import DcBlocker, Dsp, to_pcm16
from edge_recorder.audio.frames import AudioFormat, Frames
from edge_recorder.config.model import AudioConfig

FORMATS = [
    AudioFormat(16000, 1, "S16_LE"),
    AudioFormat(48000, 4, "S32_LE"),
    AudioFormat(44100, 2, "S24_LE"),
]
FULL = {"S16_LE": 2**15, "S24_LE": 2**23, "S32_LE": 2**31}


def config_for(fmt: AudioFormat, **extra: object) -> AudioConfig:
    return AudioConfig(
        source="synthetic",
        rate=fmt.rate,
        channels=fmt.channels,
        format=fmt.sample_format,
        **extra,  # type: ignore[arg-type]
    )


def encode(samples: np.ndarray, fmt: AudioFormat) -> bytes:
    """float (frames, channels) in [-1, 1] → capture bytes."""
    full = FULL[fmt.sample_format]
    ints = np.clip(np.round(samples * full), -full, full - 1).astype(np.int64)
    return ints.astype("<i2" if fmt.sample_format == "S16_LE" else "<i4").tobytes()


def run(dsp: Dsp, data: bytes, fmt: AudioFormat, sizes: list[int]) -> np.ndarray:
    out, pos = [], 0
    total = len(data) // fmt.frame_bytes
    sizes = [*sizes, total]
    for size in sizes:
        if pos >= total:
            break
        n = min(size, total - pos)
        chunk = data[pos * fmt.frame_bytes : (pos + n) * fmt.frame_bytes]
        out.append(dsp.process(Frames(chunk, fmt, pos))[0])
        pos += n
    out.append(dsp.finish()[0])
    return np.concatenate(out)


def signal(fmt: AudioFormat, seconds: float, seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    n = int(fmt.rate * seconds)
    t = np.arange(n) / fmt.rate
    base = 0.3 * np.sin(2 * np.pi * 440 * t) + 0.05 + 0.1 * rng.standard_normal(n)
    samples = np.stack([np.roll(base, c * 3) for c in range(fmt.channels)], axis=1)
    samples[n // 3 : n // 2] = 0.0  # a stretch of digital silence
    return encode(samples, fmt)


@settings(max_examples=25, deadline=None)
@given(
    fmt_index=st.integers(0, len(FORMATS) - 1),
    sizes=st.lists(st.integers(1, 3000), min_size=1, max_size=40),
    gain=st.sampled_from([0.0, 6.0, -12.0]),
    seed=st.integers(0, 10),
    array=st.sampled_from(["average", "das", "mvdr", "mvdr-postfilter"]),
)
def test_any_block_sizes_give_the_same_output_bit_for_bit(
    fmt_index: int, sizes: list[int], gain: float, seed: int, array: str
) -> None:
    fmt = FORMATS[fmt_index]
    data = signal(fmt, 0.7, seed)
    # mics 32 mm round the centre (a mono format has no array: the plain mix again)
    ring = [(32.0 * math.cos(a), 32.0 * math.sin(a), 0.0) for a in np.arange(3) * 2.1]
    geometry = ring[: fmt.channels] if fmt.channels > 1 else []
    cfg = config_for(
        fmt,
        gain_db=gain,
        digital_silence_s=0.05,
        mic_positions_mm=geometry,
        array_processing=array if geometry else "average",
    )
    whole_dsp, split_dsp = Dsp(cfg, fmt), Dsp(cfg, fmt)
    whole = run(whole_dsp, data, fmt, [])
    split = run(split_dsp, data, fmt, sizes)
    assert whole.dtype == np.float32
    assert np.array_equal(whole, split)
    a, b = whole_dsp.totals, split_dsp.totals
    assert (a.samples, a.peak, a.clipped_in, a.digital_silence_s) == (
        b.samples,
        b.peak,
        b.clipped_in,
        b.digital_silence_s,
    )
    # a float32 running sum rounded differently per block (1.3e-7 dB on x86, 1.15e-6 on a
    # Cortex-A72, found by make arm64-check); in float64 the blocks add up to ~1e-14 dB
    assert a.rms_dbfs == pytest.approx(b.rms_dbfs, abs=1e-9)
    assert a.digital_silence_s > 0


def test_dc_blocker_matches_the_textbook_recursion() -> None:
    rng = np.random.default_rng(1)
    x = (rng.standard_normal(5000) * 0.1 + 0.4).astype(np.float32)
    dc = DcBlocker(16000)
    got = np.concatenate([dc.process(x[:700]), dc.process(x[700:701]), dc.process(x[701:])])
    expected = np.zeros_like(x, dtype=np.float64)
    prev_x = prev_y = 0.0
    for i, v in enumerate(x.astype(np.float64)):
        prev_y = dc.a * prev_y + v - prev_x
        prev_x = v
        expected[i] = prev_y
    np.testing.assert_allclose(got, expected, atol=1e-6)


def tone(fmt: AudioFormat, freq: float, amplitude: float, seconds: float) -> bytes:
    t = np.arange(int(fmt.rate * seconds)) / fmt.rate
    mono = amplitude * np.sin(2 * np.pi * freq * t)
    return encode(np.repeat(mono[:, None], fmt.channels, axis=1), fmt)


def level_db(x: np.ndarray) -> float:
    return 20 * math.log10(float(np.sqrt(np.mean(x.astype(np.float64) ** 2))))


def test_resampler_passes_speech_band_and_rejects_aliases() -> None:
    fmt = AudioFormat(48000, 4, "S32_LE")
    inband = run(Dsp(config_for(fmt), fmt), tone(fmt, 1000, 0.5, 1.0), fmt, [960])
    alias = run(Dsp(config_for(fmt), fmt), tone(fmt, 10000, 0.5, 1.0), fmt, [960])
    assert inband.size == alias.size == 16000  # exact length at 16 kHz
    steady = slice(2000, 14000)
    assert level_db(inband[steady]) == pytest.approx(20 * math.log10(0.5 / math.sqrt(2)), abs=0.1)
    assert level_db(alias[steady]) < -90  # a 10 kHz tone would alias to 6 kHz without a filter


def test_dc_offset_is_removed_and_gain_applied() -> None:
    fmt = AudioFormat(16000, 1, "S16_LE")
    samples = 0.25 + 0.1 * np.sin(2 * np.pi * 300 * np.arange(32000) / 16000)
    data = encode(samples[:, None], fmt)
    out = run(Dsp(config_for(fmt, gain_db=6.0), fmt), data, fmt, [320])
    tail = out[16000:]
    assert abs(float(np.mean(tail))) < 1e-3
    expected = 20 * math.log10(0.1 / math.sqrt(2)) + 6.0
    assert level_db(tail) == pytest.approx(expected, abs=0.1)


def test_mix_weights_select_and_scale_channels() -> None:
    fmt = AudioFormat(16000, 2, "S16_LE")
    left = 0.5 * np.sin(2 * np.pi * 500 * np.arange(16000) / 16000)
    data = encode(np.stack([left, np.zeros_like(left)], axis=1), fmt)
    only_right = run(Dsp(config_for(fmt, mix_weights=[0.0, 1.0]), fmt), data, fmt, [320])
    only_left = run(Dsp(config_for(fmt, mix_weights=[1.0, 0.0]), fmt), data, fmt, [320])
    equal = run(Dsp(config_for(fmt), fmt), data, fmt, [320])
    assert np.max(np.abs(only_right)) == 0.0
    assert level_db(only_left[4000:]) - level_db(equal[4000:]) == pytest.approx(6.02, abs=0.05)


def test_meters_report_levels_clipping_and_silence() -> None:
    fmt = AudioFormat(16000, 1, "S16_LE")
    cfg = config_for(fmt, digital_silence_s=1.0, dc_removal=False)
    dsp = Dsp(cfg, fmt)
    sine = np.sin(2 * np.pi * 1000 * np.arange(16000) / 16000)
    _, meters = dsp.process(Frames(encode(sine[:, None] * 0.5, fmt), fmt, 0))
    assert meters.rms_dbfs == pytest.approx(-9.03, abs=0.05)
    assert meters.peak_dbfs == pytest.approx(-6.02, abs=0.05)
    assert meters.clipped_in == 0
    clipped = np.clip(sine * 2, -1, 1)  # hard clipping at full scale
    _, meters = dsp.process(Frames(encode(clipped[:, None], fmt), fmt, 16000))
    assert meters.clipped_in > 1000
    _, meters = dsp.process(Frames(bytes(2 * 8000), fmt, 32000))  # 0.5 s of zeros
    assert not meters.digital_silence
    _, meters = dsp.process(Frames(bytes(2 * 9600), fmt, 40000))  # 1.1 s in total
    assert meters.digital_silence
    assert dsp.totals.digital_silence_s == pytest.approx(1.1, abs=1e-3)
    constant = np.full((16000, 1), 1000, "<i2").tobytes()  # a stuck, non-zero DC value
    dsp2 = Dsp(cfg, fmt)
    _, meters = dsp2.process(Frames(constant, fmt, 0))
    assert meters.digital_silence


def test_gain_clipping_is_counted_and_pcm_saturates() -> None:
    fmt = AudioFormat(16000, 1, "S16_LE")
    sine = 0.8 * np.sin(2 * np.pi * 1000 * np.arange(1600) / 16000)
    dsp = Dsp(config_for(fmt, gain_db=6.0, dc_removal=False), fmt)
    out, meters = dsp.process(Frames(encode(sine[:, None], fmt), fmt, 0))
    assert meters.clipped_out > 0
    pcm = to_pcm16(out)
    assert pcm.max() == 32767 and pcm.min() == -32768


def test_lost_frames_are_filled_so_the_timeline_stays_aligned() -> None:
    fmt = AudioFormat(48000, 1, "S16_LE")
    dsp = Dsp(config_for(fmt), fmt)
    block = tone(fmt, 500, 0.3, 0.02)  # 960 frames
    outs = [dsp.process(Frames(block, fmt, 0))[0]]
    out, meters = dsp.process(Frames(block, fmt, 960 + 4800, lost_before=4800))
    outs.append(out)
    outs.append(dsp.finish()[0])
    assert meters.gap_frames == 4800
    assert sum(o.size for o in outs) == (960 * 2 + 4800) // 3
    assert dsp.totals.input_frames == 960 * 2 + 4800


def test_frames_in_another_format_are_refused() -> None:
    fmt = AudioFormat(16000, 1, "S16_LE")
    dsp = Dsp(config_for(fmt), fmt)
    with pytest.raises(ValueError, match="pipeline was built for"):
        dsp.process(Frames(bytes(8), AudioFormat(16000, 2, "S16_LE"), 0))
