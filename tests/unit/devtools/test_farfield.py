"""The far-field evaluation (devtools/farfield, issue #23): metrics, alignment, scenes, mixing,
VAD labels, candidates and goals. Scenes here are a few seconds at RT60 0.3 s, so the image
method stays fast."""

from __future__ import annotations

import sys
import xml.etree.ElementTree as ET
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from benchmarks import _audio
from devtools.farfield import candidates, evaluate, geometry, metrics, plot, scene
from edge_recorder.audio.vad import VadEngine, make_engine
from edge_recorder.config.hardware import load_profile

SHORT = 8.0  # long enough for a pause between turns


@pytest.fixture(scope="module")
def engines() -> dict[str, VadEngine]:
    return {name: make_engine(name) for name in evaluate.VAD_ENGINES}


@pytest.fixture(scope="module")
def pair_scene(tmp_path_factory: pytest.TempPathFactory) -> scene.Scene:
    spec = scene.SceneSpec("respeaker-2mic-hat", 0.3, SHORT, seed=5)
    return scene.load(spec, tmp_path_factory.mktemp("farfield"))


def _orthogonal(ref: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    noise = rng.standard_normal(ref.size)
    noise -= np.mean(noise)
    return noise - ref * (np.dot(noise, ref) / np.dot(ref, ref))


@pytest.mark.parametrize(("target_db", "gain"), [(20.0, 1.0), (10.0, 0.5), (0.0, 3.0), (-6.0, 1.0)])
def test_si_sdr_known_values(target_db: float, gain: float) -> None:
    rng = np.random.default_rng(0)
    ref = rng.standard_normal(16000)
    ref -= ref.mean()
    error = _orthogonal(ref, rng)
    error *= np.sqrt(np.dot(ref, ref) / np.dot(error, error) / 10 ** (target_db / 10))
    estimate = (gain * (ref + error)).astype(np.float32)
    assert metrics.si_sdr(ref.astype(np.float32), estimate) == pytest.approx(target_db, abs=0.01)


def test_si_sdr_is_scale_invariant_and_perfect_on_the_reference() -> None:
    rng = np.random.default_rng(1)
    ref = rng.standard_normal(8000).astype(np.float32)
    est = (ref + 0.3 * rng.standard_normal(8000)).astype(np.float32)
    base = metrics.si_sdr(ref, est)
    assert metrics.si_sdr(ref, est * np.float32(7.5)) == pytest.approx(base, abs=1e-4)
    assert metrics.si_sdr(ref, est * np.float32(0.01)) == pytest.approx(base, abs=1e-4)
    assert metrics.si_sdr(ref, -est) == pytest.approx(base, abs=1e-4)  # any gain, even < 0
    unrelated = rng.standard_normal(8000).astype(np.float32)
    assert metrics.si_sdr(ref, unrelated) < -15
    assert metrics.si_sdr(ref, ref) > 60


@pytest.mark.parametrize(("delay", "declared"), [(37, 0), (-3, 0), (2303, 2303), (2290, 2303)])
def test_alignment_finds_the_lag_and_a_delayed_copy_scores_as_the_reference(
    pair_scene: scene.Scene, engines: dict[str, VadEngine], delay: int, declared: int
) -> None:
    ref = pair_scene.reference
    if delay >= 0:
        late = np.concatenate([np.zeros(delay, np.float32), ref[: ref.size - delay]])
    else:
        late = np.concatenate([ref[-delay:], np.zeros(-delay, np.float32)])
    assert metrics.best_lag(ref, late, centre=declared) == delay
    itself = metrics.score(ref, ref, 0, engines)
    copy = metrics.score(ref, late, declared, engines)
    assert copy.lag == delay
    assert copy.si_sdr_db > 60 and itself.si_sdr_db > 60
    assert copy.stoi == pytest.approx(itself.stoi, abs=0.002) and copy.stoi > 0.99
    for name in engines:
        assert copy.f1[name] == pytest.approx(itself.f1[name], abs=0.02)
    # Unaligned, the same copy would be scored as noise: the alignment is what makes it fair.
    if abs(delay) > 30:
        assert metrics.si_sdr(*metrics.aligned(ref, late, 0)) < 0


def test_a_scene_is_deterministic_per_seed_and_cached(
    pair_scene: scene.Scene, tmp_path: Path
) -> None:
    scene.conversation.cache_clear()  # rebuild the speech too, not only the room and noise
    again = scene.build(pair_scene.spec)
    for part in ("speech", "noise", "reference", "early", "dry", "labels"):
        np.testing.assert_array_equal(getattr(again, part), getattr(pair_scene, part), part)
    other = scene.build(replace(pair_scene.spec, seed=6))
    assert not np.allclose(other.noise, pair_scene.noise)
    assert geometry.place_talkers(5) != geometry.place_talkers(6)
    stored = scene.load(pair_scene.spec, tmp_path)  # a miss: simulated and written
    assert len(list(tmp_path.glob("*.npz"))) == 1
    loaded = scene.load(pair_scene.spec, tmp_path)  # a hit: read back the same
    np.testing.assert_array_equal(loaded.speech, stored.speech)


@pytest.mark.parametrize("profile", geometry.PROFILES)
def test_a_scene_has_the_profiles_mics_in_channel_order(profile: str) -> None:
    spec = scene.SceneSpec(profile, 0.3, 1.0, seed=2)
    built = scene.build(spec)
    mics = np.asarray(load_profile(profile).audio["mic_positions_mm"]) / 1000
    assert built.channels == len(mics)
    np.testing.assert_allclose(built.positions_m, mics)
    capture = scene.mix(built, 10.0)
    assert capture.shape == (int(spec.seconds * scene.RATE), len(mics))
    assert capture.dtype == np.float32


def test_the_board_hangs_on_the_wall_facing_into_the_room() -> None:
    board = np.array([[0.0, 0.0, 0.0], [0.05, 0.0, 0.0], [0.0, 0.05, 0.0], [0.0, 0.0, 0.05]])
    room = geometry.board_to_room(board)
    np.testing.assert_allclose(room[0], geometry.DEVICE_M)
    np.testing.assert_allclose(room[1] - room[0], [0.05, 0, 0])  # along the wall
    np.testing.assert_allclose(room[2] - room[0], [0, 0, 0.05])  # board y is up
    np.testing.assert_allclose(room[3] - room[0], [0, 0.05, 0])  # board z into the room
    for seed in range(20):
        for talker in geometry.place_talkers(seed):
            distance = np.linalg.norm(np.subtract(talker.position(), geometry.DEVICE_M))
            assert 1.0 <= distance <= 3.1


@pytest.mark.parametrize("snr_db", evaluate.SNRS_DB)
def test_mixing_hits_the_snr_at_the_reference_mic(pair_scene: scene.Scene, snr_db: float) -> None:
    speech_only = scene.mix(pair_scene, 300.0)[:, scene.REFERENCE_MIC]  # noise at -300 dB
    capture = scene.mix(pair_scene, snr_db)[:, scene.REFERENCE_MIC]
    noise = capture - speech_only
    speech_power = scene.active_power(speech_only, pair_scene.labels)
    measured = 10 * np.log10(speech_power / np.mean(noise.astype(np.float64) ** 2))
    assert measured == pytest.approx(snr_db, abs=0.1)
    assert 10 * np.log10(speech_power) == pytest.approx(scene.SPEECH_LEVEL_DBFS, abs=0.1)


def test_vad_labels_come_from_the_dry_speech(
    pair_scene: scene.Scene, engines: dict[str, VadEngine]
) -> None:
    labels = pair_scene.labels
    np.testing.assert_array_equal(labels, _audio.labels_of(pair_scene.reference))
    hop = _audio.LABEL_HOP
    dry = pair_scene.dry.sum(axis=0)
    frames = dry[: labels.size * hop].reshape(labels.size, hop)
    talking = np.convolve(np.abs(frames).max(axis=1) > 1e-3, np.ones(31), "same") > 0
    assert 0.2 < labels.mean() < 0.95
    assert not np.any(labels & ~talking)  # never speech where nobody talks (±150 ms)
    loud = 10 * np.log10(np.mean(frames.astype(np.float64) ** 2, axis=1) + 1e-12)
    assert labels[loud > loud.max() - 20].mean() > 0.95
    clean = metrics.score(pair_scene.reference, pair_scene.reference, 0, engines)
    assert clean.f1["silero"] > 0.85
    noise_only = pair_scene.noise[0] * np.float32(0.05)
    assert metrics.vad_f1(engines["silero"], noise_only, labels) < 0.5


def test_candidates_keep_the_sample_count_and_run_checks_it() -> None:
    rng = np.random.default_rng(3)
    capture = (0.05 * rng.standard_normal((16000, 4))).astype(np.float32)
    average, cpu = candidates.run(candidates.ChannelAverage(), capture)
    np.testing.assert_allclose(average, capture.mean(axis=1), atol=1e-7)
    assert cpu >= 0
    ns, _ = candidates.run(candidates.WebRtcNs(candidates.ChannelAverage()), capture)
    assert ns.shape == (16000,) and ns.dtype == np.float32 and np.any(ns != 0)

    class Short:
        delay_samples = 0

        def process(self, block: np.ndarray) -> np.ndarray:
            return np.asarray(block[1:, 0], np.float32)

    with pytest.raises(ValueError, match="returned"):
        candidates.run(Short(), capture)


def test_without_the_array_package_the_bench_runs_the_baselines_and_says_so(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "edge_recorder.audio.array", None)  # import → ImportError
    factories, note = candidates.factories()
    assert [f.name for f in factories] == [candidates.AVERAGE, "WebRTC NS+AGC on average"]
    assert "not importable" in note
    fake = [_result(candidates.AVERAGE, 0.0, 0.5), _result("WebRTC NS+AGC on average", 1, 0.5)]
    first = evaluate.goals(fake, note)[0]
    assert first == {"goal": "beamformers measured", "value": note, "met": False}


def _result(name: str, si_sdr: float, stoi: float, **kw: object) -> evaluate.Result:
    base = {
        "profile": "respeaker-4mic-array", "rt60_s": 0.5, "snr_db": 5.0, "candidate": name,
        "si_sdr_db": si_sdr, "si_sdr_early_db": si_sdr, "stoi": stoi, "f1_silero": 0.9,
        "f1_webrtc": 0.8, "cpu_s_per_audio_s": 0.001, "lag_samples": 0,
    }  # fmt: skip
    return evaluate.Result(**{**base, **kw})  # type: ignore[arg-type]


def test_goals_need_the_gain_on_both_hats_and_no_loss_anywhere() -> None:
    results = []
    for profile in evaluate.GOAL_PROFILES:
        results += [
            _result(candidates.AVERAGE, -6.0, 0.60, profile=profile),
            _result("array:good", 0.5, 0.66, profile=profile),
            _result("array:short", -1.0, 0.70, profile=profile),
        ]
    results += [
        _result(candidates.AVERAGE, 5.0, 0.8, snr_db=20.0),
        _result("array:good", 5.2, 0.8, snr_db=20.0),
        _result("array:short", 4.0, 0.8, snr_db=20.0, cpu_s_per_audio_s=0.02),
    ]
    met = {}
    for goal in evaluate.goals(results, ""):
        name, what = goal["goal"].split(": ", 1)
        kind = "gain" if "SI-SDR and" in what else "no worse" if "no worse" in what else "cpu"
        met[name, kind] = goal["met"]
    assert met == {
        ("array:good", "gain"): True,
        ("array:good", "no worse"): True,
        ("array:good", "cpu"): True,
        ("array:short", "gain"): False,  # +5 dB only
        ("array:short", "no worse"): False,  # -1 dB at 20 dB SNR
        ("array:short", "cpu"): False,  # 0.02 CPU-s per audio-s
    }


def test_the_plot_is_svg_with_every_candidate(pair_scene: scene.Scene) -> None:
    results = [
        _result(name, value, 0.5 + value / 100, snr_db=snr, rt60_s=0.5)
        for name in (candidates.AVERAGE, candidates.ORACLE, "array:das")
        for snr, value in ((20.0, 3.0), (5.0, -2.0))
    ]
    svg = plot.farfield_svg(results, subtitle="test.")
    assert svg == plot.farfield_svg(results, subtitle="test.")
    root = ET.fromstring(svg)
    text = " ".join(t.text or "" for t in root.iter("{http://www.w3.org/2000/svg}text"))
    for name in (candidates.AVERAGE, candidates.ORACLE, "array:das", "SI-SDR dB", "STOI"):
        assert name in text
    assert len(list(root.iter("{http://www.w3.org/2000/svg}polyline"))) == 6
