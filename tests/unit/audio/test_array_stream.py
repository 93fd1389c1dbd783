"""Array processing as a stream: the contract, bit-exact chunk invariance, the pipeline's
timeline and meters with a beamformer in place of the mix, and the config that selects it."""

from __future__ import annotations

import typing
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge_recorder.app import daemon
from edge_recorder.audio.array import KINDS, ArrayProcessor, make_array_processor
from edge_recorder.audio.array.geometry import direction
from edge_recorder.audio.dsp import Dsp
from edge_recorder.audio.frames import AudioFormat, Frames
from edge_recorder.config.hardware import PROFILES_ENV, load_profile
from edge_recorder.config.loader import EX_CONFIG, ConfigError, build_config
from edge_recorder.config.model import AudioConfig
from tests.unit.audio.test_array_beams import FOUR, RATE, SIX, propagate, speechlike

F32 = npt.NDArray[np.float32]
ARRAY_PROFILES = ["respeaker-4mic-array", "respeaker-6mic-array", "respeaker-2mic-hat"]


@pytest.fixture(autouse=True)
def _no_site_profiles(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr("edge_recorder.config.hardware.SITE_PROFILES", tmp_path / "no-site")
    monkeypatch.delenv(PROFILES_ENV, raising=False)


def talk(positions: npt.NDArray[np.float64], seconds: float, seed: int) -> F32:
    """A talker at (40°, 25°), a steady noise source at (200°, 10°), sensor noise."""
    rng = np.random.default_rng(seed)
    n = int(seconds * RATE)
    target = propagate(speechlike(n, rng), positions, direction(40, 25)) * 0.05
    fan = propagate(rng.standard_normal(n), positions, direction(200, 10)) * 0.02
    return (target + fan + 0.005 * rng.standard_normal(target.shape)).astype(np.float32)


def run_split(kind: str, positions: npt.NDArray[np.float64], x: F32, sizes: list[int]) -> F32:
    return run_framed(make_array_processor(kind, positions), x, sizes)


def run_framed(processor: ArrayProcessor, x: F32, sizes: list[int]) -> F32:
    """`processor`'s output for x fed in blocks of `sizes` (cycled), each checked."""
    out, pos, i = [], 0, 0
    while pos < x.shape[0]:
        n = sizes[i % len(sizes)]
        out.append(processor.process(x[pos : pos + n]))
        assert out[-1].shape == (min(n, x.shape[0] - pos),) and out[-1].dtype == np.float32
        pos, i = pos + n, i + 1
    return np.concatenate(out)


BLIND = [k for k in KINDS if k != "calibrated"]  # the kinds that need no room calibration


def test_the_contract() -> None:
    assert {"average", "das", "mvdr"} <= set(KINDS)
    assert set(KINDS) == set(
        typing.get_args(AudioConfig.model_fields["array_processing"].annotation)
    )
    x = talk(FOUR, 1.0, 0)
    for kind in BLIND:
        processor = make_array_processor(kind, FOUR)
        y = processor.process(x)
        assert y.shape == (x.shape[0],) and y.dtype == np.float32
        assert processor.delay_samples >= 0
        assert not np.any(y[: processor.delay_samples])  # warm-up zeros
        assert np.any(y[processor.delay_samples :])
        assert processor.process(x[:0]).shape == (0,)
    with pytest.raises(ValueError, match="at least 2 microphones"):
        make_array_processor("das", FOUR[:1])
    with pytest.raises(ValueError, match="unknown array processing"):
        make_array_processor("gsc", FOUR)
    with pytest.raises(ValueError, match="calibrat"):  # its own tests: test_array_calibrated_beam
        make_array_processor("calibrated", FOUR)


@pytest.mark.parametrize("kind", ["das", "mvdr", "mvdr-postfilter"])
def test_an_impulse_comes_out_exactly_delay_samples_late(kind: str) -> None:
    processor = make_array_processor(kind, SIX)
    x = np.zeros((8000, 6), np.float32)
    x[3000] = 0.5  # the same at every mic: from broadside, where the beam starts
    y = processor.process(x)
    assert int(np.argmax(np.abs(y))) == 3000 + processor.delay_samples
    assert y[3000 + processor.delay_samples] == pytest.approx(0.5, abs=1e-6)


@pytest.mark.parametrize("kind", [k for k in BLIND if k != "average"])
@pytest.mark.parametrize("name", ["six", "four"])
def test_any_framing_gives_the_same_output_bit_for_bit(kind: str, name: str) -> None:
    positions = SIX if name == "six" else FOUR
    x = talk(positions, 4.0, 1)
    whole = run_split(kind, positions, x, [x.shape[0]])
    assert np.any(whole)
    for seed in range(3):
        rng = np.random.default_rng(seed)
        sizes = [int(v) for v in rng.integers(1, 3000, 40)] + [1] * 50 + [2047, 2049]
        assert np.array_equal(whole, run_split(kind, positions, x, sizes))


@settings(max_examples=10, deadline=None)
@given(sizes=st.lists(st.integers(1, 4000), min_size=1, max_size=30))
def test_mvdr_is_chunk_invariant_under_any_split(sizes: list[int]) -> None:
    x = talk(SIX, 1.5, 2)
    assert np.array_equal(run_split("mvdr", SIX, x, [x.shape[0]]), run_split("mvdr", SIX, x, sizes))


def test_average_is_the_old_equal_mix() -> None:
    """The processor's "average" and Dsp's historical mix agree bit for bit."""
    fmt = AudioFormat(16000, 6, "S32_LE")
    x = talk(SIX, 1.0, 3)
    raw = np.round(x * 2**31).astype("<i4")
    cfg = AudioConfig(source="synthetic", rate=16000, channels=6, format="S32_LE", dc_removal=False)
    dsp = Dsp(cfg, fmt)
    mixed = np.concatenate([dsp.process(Frames(raw.tobytes(), fmt, 0))[0], dsp.finish()[0]])
    ints = raw.astype(np.float32) * np.float32(2.0**-31)
    assert np.array_equal(make_array_processor("average", SIX).process(ints), mixed)


# --- the pipeline -------------------------------------------------------------------------

FMT = AudioFormat(48000, 8, "S32_LE")  # the 6-mic kit: 6 mics and a 2-channel loopback


def array_config(kind: str, **extra: object) -> AudioConfig:
    return AudioConfig(
        source="synthetic",
        rate=FMT.rate,
        channels=FMT.channels,
        format=FMT.sample_format,
        mic_positions_mm=[tuple(p) for p in (SIX * 1000).tolist()],
        array_processing=kind,
        **extra,
    )


def capture(seconds: float, seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    n = int(seconds * FMT.rate)
    target = propagate(speechlike(n, rng, FMT.rate), SIX, direction(40, 25), FMT.rate) * 0.05
    mics = target + 0.003 * rng.standard_normal(target.shape) + 0.01  # and a DC offset
    loopback = rng.standard_normal((n, 2)) * 0.1  # must not leak into the beam
    samples = np.concatenate([mics, loopback], axis=1)
    samples[n // 2 : n // 2 + FMT.rate // 5] = 0.0  # 200 ms of digital silence
    samples[n // 4, 0] = 1.0  # one clipped sample
    ints = np.clip(np.round(samples * 2**31), -(2**31), 2**31 - 1).astype("<i4")
    return ints.tobytes()


def run_dsp(cfg: AudioConfig, data: bytes, sizes: list[int], gap_at: int = -1) -> Dsp:
    dsp, out, pos, i = Dsp(cfg, FMT), [], 0, 0
    total = len(data) // FMT.frame_bytes
    while pos < total:
        n = min(sizes[i % len(sizes)], total - pos)
        lost = 960 if pos == gap_at else 0  # the source lost 20 ms here
        chunk = data[pos * FMT.frame_bytes : (pos + n) * FMT.frame_bytes]
        out.append(dsp.process(Frames(chunk, FMT, pos, lost_before=lost))[0])
        pos, i = pos + n, i + 1
    out.append(dsp.finish()[0])
    dsp.output = np.concatenate(out)  # type: ignore[attr-defined]
    return dsp


@pytest.mark.parametrize("kind", ["das", "mvdr", "mvdr-postfilter"])
def test_the_pipeline_with_a_beamformer_is_chunk_invariant_and_keeps_its_timeline(
    kind: str,
) -> None:
    data = capture(3.0, 4)
    cfg = array_config(kind, gain_db=6.0, digital_silence_s=0.1)
    whole = run_dsp(cfg, data, [10**9], gap_at=-1)
    mics_only = [1 / 6] * 6 + [0.0, 0.0]
    plain = run_dsp(array_config("average", mix_weights=mics_only), data, [5760])
    assert whole.output.size == plain.output.size == 3 * 16000  # type: ignore[attr-defined]
    for sizes in ([5760], [1, 4799, 333, 48000], [17, 2048 * 3 + 1]):
        split = run_dsp(cfg, data, sizes)
        assert np.array_equal(whole.output, split.output)  # type: ignore[attr-defined]
        assert split.totals.samples == whole.totals.samples
        assert split.totals.peak == whole.totals.peak
    totals = whole.totals
    assert totals.clipped_in == 1
    assert totals.digital_silence_s == pytest.approx(0.2, abs=0.01)
    # the DC offset is gone; the gain applied to about the plain mix's level of the talker
    body = whole.output[8000:-8000]  # type: ignore[attr-defined]
    assert abs(float(np.mean(body))) < 1e-3
    ref = plain.output[8000:-8000]  # type: ignore[attr-defined]
    assert 1.8 < np.sqrt(np.mean(body**2)) / np.sqrt(np.mean(ref**2)) < 2.6
    with_gap = run_dsp(cfg, data, [4800], gap_at=48000)
    assert with_gap.output.size == (3 * 48000 + 960) // 3  # type: ignore[attr-defined]


def test_the_loopback_channels_never_reach_the_beam() -> None:
    rng = np.random.default_rng(5)
    x = np.zeros((48000, 8))
    x[:, 6:] = rng.standard_normal((48000, 2)) * 0.1
    data = np.round(x * 2**31).astype("<i4").tobytes()
    for kind in ("das", "mvdr", "mvdr-postfilter"):
        out = run_dsp(array_config(kind), data, [4800]).output  # type: ignore[attr-defined]
        assert out.size == 16000 and not np.any(out)


def test_the_beamformed_output_is_sample_aligned_with_the_plain_mix() -> None:
    x = np.zeros((48000, 8))
    x[24000, :6] = 0.5
    data = np.round(x * 2**31).astype("<i4").tobytes()
    peaks = []
    for kind in ("average", "das", "mvdr"):
        cfg = array_config(kind, dc_removal=False, mix_weights=[1 / 6] * 6 + [0.0, 0.0])
        out = run_dsp(cfg, data, [4800]).output  # type: ignore[attr-defined]
        assert out.size == 16000
        peaks.append((int(np.argmax(np.abs(out))), round(float(np.max(np.abs(out))), 4)))
    assert peaks[0] == peaks[1] == peaks[2] and peaks[0][0] == 8000


def test_the_batch_setting_sets_the_live_latency_but_not_the_timeline() -> None:
    """audio.array_batch_hops reaches the beamformer: 2 hops add 48 ms live instead of 144,
    and the recording still has the plain mix's length with the impulse in the same place."""
    from edge_recorder.audio.array.stage import ArrayMix

    x = np.zeros((48000, 8))
    x[24000, :6] = 0.5
    data = np.round(x * 2**31).astype("<i4").tobytes()
    fmt = AudioFormat(rate=48000, channels=8, sample_format="S32_LE")
    latencies = {}
    for hops in (8, 2):
        cfg = array_config("mvdr", dc_removal=False, array_batch_hops=hops)
        latencies[hops] = ArrayMix(cfg, fmt, 2.0**-31, 16000).latency_s
        out = run_dsp(cfg, data, [4800]).output  # type: ignore[attr-defined]
        assert out.size == 16000 and int(np.argmax(np.abs(out))) == 8000
    assert latencies == {8: (8 * 256 + 255) / 16000, 2: (2 * 256 + 255) / 16000}


# --- configuration ------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["das", "mvdr"])
def test_array_processing_without_a_geometry_is_a_config_error(kind: str) -> None:
    with pytest.raises(ConfigError, match=f"array_processing = '{kind}' needs audio.mic_pos"):
        build_config({"audio": {"channels": 4, "array_processing": kind}}, environ={})
    with pytest.raises(ConfigError, match="at least 2 microphones"):
        build_config(
            {"audio": {"channels": 2, "array_processing": kind, "mic_positions_mm": [[0, 0, 0]]}},
            environ={},
        )
    ok = build_config({"audio": {"channels": 4, "array_processing": "average"}}, environ={})
    assert ok.audio.array_processing == "average"


def test_the_daemon_refuses_array_processing_without_a_geometry(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text('[audio]\nsource = "synthetic"\nchannels = 2\narray_processing = "das"\n')
    assert daemon.main(config) == EX_CONFIG


@pytest.mark.parametrize("profile", ARRAY_PROFILES)
def test_array_profiles_choose_a_beam_that_config_can_switch_off(profile: str) -> None:
    shipped = load_profile(profile).audio["array_processing"]
    assert build_config({"audio": {"profile": profile}}, environ={}).audio.array_processing == (
        shipped
    )
    config = build_config(
        {"audio": {"profile": profile, "array_processing": "average"}}, environ={}
    )
    assert config.audio.array_processing == "average"
    assert len(config.audio.mic_positions_mm) >= 2
    mono = build_config({"audio": {"profile": profile, "channels": 1}}, environ={})
    assert mono.audio.array_processing == "average"  # the geometry went, so did the beam
