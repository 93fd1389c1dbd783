"""The numpy Silero backend against onnxruntime running the shipped .onnx, call by call.

Both engines get the same windows in the same call sizes (1..8 windows per call, cycling, so
state and context are carried across calls of every size); after every call the
probabilities and the LSTM state must agree within float32 rounding.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import subprocess
import sys
from collections.abc import Iterator
from importlib import resources
from pathlib import Path

import numpy as np
import pytest
import soundfile
import soxr

from edge_recorder.audio.vad import make_engine
from edge_recorder.audio.vad_engines import silero_numpy
from edge_recorder.audio.vad_engines.silero import MODEL, SileroVad
from edge_recorder.audio.vad_engines.silero_numpy import SileroNumpyVad, load_weights
from edge_recorder.config.model import VadConfig

RATE = 16000
PROB_ATOL = 1e-4
# The cell state c is an unbounded accumulator (|c| reaches ~100-300 on loud input, where one
# float32 ulp is 1.5e-5), so it is compared relative to its size; h is bounded by 1.
STATE_ATOL, C_RTOL = 1e-4, 1e-5


def _say(text: str, voice: str, folder: Path) -> np.ndarray:
    path = folder / f"{voice}.wav"
    subprocess.run(
        ["espeak-ng", "-v", voice, "-w", str(path), text], check=True, capture_output=True
    )
    audio, rate = soundfile.read(path, dtype="float32")
    resampled: np.ndarray = soxr.resample(audio, rate, RATE)
    return resampled.astype(np.float32)


@pytest.fixture(scope="module")
def speech(tmp_path_factory: pytest.TempPathFactory) -> np.ndarray:
    """~9 s: silence, two voices with a pause, a quiet noise floor throughout."""
    tmp = tmp_path_factory.mktemp("speech")
    gap = np.zeros(RATE // 2, np.float32)
    one = _say("Any fever, chills, or shortness of breath since last weekend?", "en-us+m3", tmp)
    two = _say("A low fever on Saturday, but no trouble breathing at all.", "en-gb+f3", tmp)
    audio = np.concatenate([gap, 0.6 * one, gap, gap, 0.3 * two, gap])
    noise = np.random.default_rng(3).standard_normal(audio.size).astype(np.float32) * 1e-3
    return (audio + noise).astype(np.float32)


def _signal(kind: str, speech: np.ndarray) -> np.ndarray:
    rng = np.random.default_rng(5)
    if kind == "noise":  # loud white noise drives |c| high: the hardest case for rounding
        return np.clip(rng.standard_normal(300 * 512) * 0.3, -1, 1).astype(np.float32)
    if kind == "silence":
        return np.zeros(200 * 512, np.float32)
    return speech


def _calls(windows: np.ndarray) -> Iterator[np.ndarray]:
    """Consecutive calls of 1, 2, ..., 8, 1, 2, ... windows."""
    start = 0
    for size in itertools.cycle(range(1, 9)):
        if start >= windows.shape[0]:
            return
        yield windows[start : start + size]
        start += size


def _ort_state(engine: SileroVad) -> tuple[np.ndarray, np.ndarray]:
    return engine._h, engine._c


@pytest.fixture(scope="module")
def ort() -> SileroVad:
    return SileroVad()


@pytest.mark.parametrize("kind", ["noise", "silence", "speech"])
def test_numpy_matches_onnxruntime_call_by_call(
    kind: str, speech: np.ndarray, ort: SileroVad
) -> None:
    audio = _signal(kind, speech)
    n = audio.size // 512
    windows = audio[: n * 512].reshape(n, 512)
    ours = SileroNumpyVad()
    ort.reset()
    probs_ours, probs_ort = [], []
    for call in _calls(windows):
        probs_ours.append(ours.probabilities(call))
        probs_ort.append(ort.probabilities(call))
        h, c = ours.state
        h_ort, c_ort = _ort_state(ort)
        np.testing.assert_allclose(h, h_ort, rtol=0, atol=STATE_ATOL)
        np.testing.assert_allclose(c, c_ort, rtol=C_RTOL, atol=STATE_ATOL)
    mine, theirs = np.concatenate(probs_ours), np.concatenate(probs_ort)
    assert mine.dtype == np.float32 and mine.shape == (n,)
    assert n >= 200
    assert float(np.max(np.abs(mine - theirs))) < PROB_ATOL
    if kind == "speech":  # the comparison covers both decisions, not just one regime
        assert np.mean(theirs >= 0.5) > 0.3 and np.mean(theirs < 0.5) > 0.2
    if kind == "silence":
        assert float(theirs.max()) < 0.1


def test_reset_forgets_state_and_context(speech: np.ndarray) -> None:
    n = speech.size // 512
    windows = speech[: n * 512].reshape(n, 512)
    probe = windows[100:103]
    fresh = SileroNumpyVad().probabilities(probe)
    engine = SileroNumpyVad()
    engine.probabilities(windows[:100])
    warm = engine.probabilities(probe)
    assert float(np.max(np.abs(warm - fresh))) > 1e-3  # carried state matters here
    engine.probabilities(windows[200:230])
    engine.reset()
    h, c = engine.state
    assert not h.any() and not c.any() and h.shape == c.shape == (1, 1, 128)
    np.testing.assert_array_equal(engine.probabilities(probe), fresh)


def test_empty_call_changes_nothing(speech: np.ndarray) -> None:
    windows = speech[: 40 * 512].reshape(40, 512)
    a, b = SileroNumpyVad(), SileroNumpyVad()
    a.probabilities(windows[:20])
    b.probabilities(windows[:20])
    assert a.probabilities(np.zeros((0, 512), np.float32)).shape == (0,)
    np.testing.assert_array_equal(a.probabilities(windows[20:]), b.probabilities(windows[20:]))


def test_weights_were_extracted_from_the_shipped_model() -> None:
    weights = load_weights()
    model = (resources.files("edge_recorder.audio") / "models" / MODEL).read_bytes()
    meta = weights["meta"]
    assert meta["source"] == MODEL
    assert meta["source_sha256"] == hashlib.sha256(model).hexdigest()  # rerun the extractor
    assert meta["lstm_gate_order"] == "iofc"
    arrays = {k: v for k, v in weights.items() if k != "meta"}
    assert all(v.dtype == np.float32 for v in arrays.values())
    assert arrays["stft_basis"].shape == (258, 256)
    assert arrays["lstm_w"].shape == arrays["lstm_r"].shape == (512, 128)


def test_missing_weights_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(silero_numpy, "WEIGHTS", "not-there.npz")
    with pytest.raises(RuntimeError, match=r"not-there\.npz are missing"):
        load_weights()


def test_backend_selection() -> None:
    default = make_engine("silero", VadConfig())
    assert isinstance(default, SileroNumpyVad)
    assert isinstance(make_engine("silero"), SileroNumpyVad)
    ort = make_engine("silero", VadConfig(silero_backend="onnxruntime"))
    assert isinstance(ort, SileroVad)
    assert default.name == ort.name == "silero" and default.window == ort.window == 512


_CHILD = """
import json, sys
import numpy as np
from edge_recorder.audio import pipeline  # noqa: F401 - what the daemon imports
from edge_recorder.audio.vad import make_engine
from edge_recorder.config.model import VadConfig
engine = make_engine("silero", VadConfig())
probs = engine.probabilities(np.zeros((3, 512), np.float32))
from threadpoolctl import threadpool_info
blas = [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"]
print(json.dumps({"ort": "onnxruntime" in sys.modules, "type": type(engine).__name__,
                  "probs": probs.tolist(), "blas": blas}))
"""


def test_numpy_backend_never_imports_onnxruntime() -> None:
    done = subprocess.run(
        [sys.executable, "-c", _CHILD], capture_output=True, text=True, check=True, timeout=60
    )
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["type"] == "SileroNumpyVad"
    assert result["ort"] is False
    assert len(result["probs"]) == 3
    assert result["blas"] and all(n == 1 for n in result["blas"])  # one BLAS thread
