"""VAD: the streaming tracker (with a scripted engine) and the three real engines."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile
import soxr

from edge_recorder.audio.vad import VoiceActivity, make_engine
from edge_recorder.config.model import VadConfig

WINDOW = 160  # 10 ms windows for the scripted engine


class ScriptedEngine:
    """Returns probabilities from a script, one per window, regardless of the audio."""

    name = "scripted"
    window = WINDOW

    def __init__(self, script: list[float]) -> None:
        self.script = script
        self.used = 0

    def probabilities(self, windows: np.ndarray) -> np.ndarray:
        out = np.array(self.script[self.used : self.used + windows.shape[0]], np.float32)
        self.used += windows.shape[0]
        return out

    def reset(self) -> None:
        self.used = 0


def feed(tracker: VoiceActivity, windows: int, sizes: int = 1000) -> list:
    audio = np.zeros(windows * WINDOW, np.float32)
    updates = [tracker.process(audio[i : i + sizes]) for i in range(0, audio.size, sizes)]
    return [*updates, tracker.finish()]


def test_segments_have_hangover_and_bridge_short_pauses() -> None:
    # speech 0.1-0.5 s, a 0.2 s pause (bridged by 300 ms hangover), speech to 1.0 s, silence
    script = [0.0] * 10 + [0.9] * 40 + [0.1] * 20 + [0.9] * 30 + [0.0] * 100
    tracker = VoiceActivity(ScriptedEngine(script), VadConfig(hangover_ms=300))
    updates = feed(tracker, len(script))
    assert tracker.totals.segments == [(0.1, 1.3)]
    assert tracker.totals.speech_ratio == pytest.approx(1.2 / 2.0)
    assert sum(len(u.segments) for u in updates) == 1
    assert updates[-1].time_since_speech_s == pytest.approx(1.0)
    assert not updates[-1].in_speech


def test_pause_longer_than_hangover_splits_segments_and_hysteresis_holds() -> None:
    # 0.4 sits between offset (0.5-0.15) and onset (0.5): it continues speech, never starts it
    script = [0.4] * 10 + [0.8] * 20 + [0.4] * 20 + [0.0] * 50 + [0.8] * 10
    tracker = VoiceActivity(ScriptedEngine(script), VadConfig(hangover_ms=200))
    feed(tracker, len(script))
    assert tracker.totals.segments == [(0.1, 0.7), (1.0, 1.1)]  # last one ends at the audio end


def test_speech_ratio_per_chunk_and_time_since_speech() -> None:
    script = [0.9] * 50 + [0.0] * 150
    tracker = VoiceActivity(ScriptedEngine(script), VadConfig(hangover_ms=0))
    first = tracker.process(np.zeros(50 * WINDOW, np.float32))
    second = tracker.process(np.zeros(150 * WINDOW, np.float32))
    assert first.speech_ratio == 1.0 and first.in_speech
    assert second.speech_ratio == 0.0
    assert second.time_since_speech_s == pytest.approx(1.5)
    assert first.probabilities.size == 50 and first.start_s == 0.0
    assert second.start_s == pytest.approx(0.5)


def test_trim_marks_only_silence_beyond_the_limit() -> None:
    script = [0.9] * 20 + [0.0] * 200 + [0.9] * 10
    cfg = VadConfig(hangover_ms=100, trim_silence_over_s=1.0)
    tracker = VoiceActivity(ScriptedEngine(script), cfg)
    updates = feed(tracker, len(script))
    drop = np.concatenate([u.drop for u in updates])
    assert not drop[:120].any()  # speech, hangover and the first second of silence are kept
    assert drop[121:220].all()
    assert not drop[220:].any()
    assert tracker.totals.dropped_s == pytest.approx(0.99, abs=0.011)
    untrimmed = VoiceActivity(ScriptedEngine(script), VadConfig(hangover_ms=100))
    assert not np.concatenate([u.drop for u in feed(untrimmed, len(script))]).any()


def test_unknown_engine_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="unknown VAD engine"):
        make_engine("nope")


@pytest.fixture(scope="module")
def speech(tmp_path_factory: pytest.TempPathFactory) -> np.ndarray:
    """1 s of digital silence, espeak-ng speech, 1 s of silence; 16 kHz float32."""
    path: Path = tmp_path_factory.mktemp("speech") / "s.wav"
    subprocess.run(
        ["espeak-ng", "-v", "en-us", "-w", str(path), "Please take a deep breath in, and out."],
        check=True,
        capture_output=True,
    )
    audio, rate = soundfile.read(path, dtype="float32")
    audio = soxr.resample(audio, rate, 16000).astype(np.float32) * 0.5
    pad = np.zeros(16000, np.float32)
    return np.concatenate([pad, audio, pad])


@pytest.mark.parametrize("name", ["silero", "webrtc", "energy"])
def test_engines_find_speech_and_not_silence(name: str, speech: np.ndarray) -> None:
    engine = make_engine(name)
    n = speech.size // engine.window
    windows = speech[: n * engine.window].reshape(n, engine.window)
    probs = engine.probabilities(windows)
    times = (np.arange(n) + 0.5) * engine.window / 16000
    middle = (times > 1.3) & (times < speech.size / 16000 - 1.3)
    silent = (times < 0.9) | (times > speech.size / 16000 - 0.6)
    assert probs.shape == (n,) and probs.dtype == np.float32
    assert np.mean(probs[middle] >= 0.5) > 0.6
    assert np.mean(probs[silent] >= 0.5) < 0.05


def test_silero_carries_state_and_context_across_calls(speech: np.ndarray) -> None:
    engine = make_engine("silero")
    n = speech.size // 512
    windows = speech[: n * 512].reshape(n, 512)
    whole = engine.probabilities(windows)
    engine.reset()
    parts = np.concatenate([engine.probabilities(windows[i : i + 3]) for i in range(0, n, 3)])
    np.testing.assert_allclose(parts, whole, atol=1e-5)
    engine.reset()
    # without the carried state and context each call starts cold and the output differs
    cold = np.concatenate(
        [make_engine("silero").probabilities(windows[i : i + 3]) for i in range(0, n, 3)]
    )
    assert np.max(np.abs(cold - whole)) > 0.05


def test_batching_defers_scoring_but_decides_the_same() -> None:
    # 10 ms windows, 25 ms chunks, 100 ms batches: nothing is scored until a batch is pending,
    # then every whole window is; the decisions equal scoring every chunk at once
    script = [0.0] * 13 + [0.9] * 40 + [0.1] * 37 + [0.9] * 28
    batched = VoiceActivity(ScriptedEngine(script), VadConfig(hangover_ms=100, batch_ms=100))
    eager = VoiceActivity(ScriptedEngine(script), VadConfig(hangover_ms=100, batch_ms=0))
    first = [batched.process(np.zeros(400, np.float32)) for _ in range(3)]
    assert [u.probabilities.size for u in first] == [0, 0, 0]
    assert batched.pending_samples == 1200
    assert first[-1].time_since_speech_s == 0.0  # undecided audio is not silence yet
    fourth = batched.process(np.zeros(400, np.float32))
    assert fourth.probabilities.size == 10 and batched.pending_samples == 0
    rest = feed(batched, len(script) - 10, sizes=400)
    updates = [*first, fourth, *rest]
    reference = feed(eager, len(script), sizes=400)
    assert batched.totals.segments == eager.totals.segments == [(0.13, 0.63), (0.9, 1.18)]
    np.testing.assert_array_equal(
        np.concatenate([u.speech for u in updates]), np.concatenate([u.speech for u in reference])
    )
    # finish() scores everything still pending (8 windows here), not just one last window
    assert rest[-1].probabilities.size == 8 and rest[-1].decided_s == pytest.approx(0.08)


def test_a_chunk_that_decides_nothing_reports_what_a_full_decision_on_no_windows_does(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The short cut for chunks that only add to the batch says exactly what `_decide` says
    for no windows, through speech, its hangover and the pauses between."""
    script = [0.0] * 13 + [0.9] * 40 + [0.1] * 37 + [0.9] * 28 + [0.0] * 30
    config = VadConfig(hangover_ms=100, batch_ms=100)
    fast = VoiceActivity(ScriptedEngine(script), config)
    slow = VoiceActivity(ScriptedEngine(script), config)
    monkeypatch.setattr(
        slow, "_nothing_decided", lambda: slow._decide(np.zeros(0, np.float32), np.zeros(0))
    )
    audio = np.zeros(len(script) * WINDOW, np.float32)
    empty = 0
    for i in range(0, audio.size, 400):
        a, b = fast.process(audio[i : i + 400]), slow.process(audio[i : i + 400])
        empty += a.probabilities.size == 0
        assert (a.start_s, a.window_s, a.segments, a.speech_ratio) == (
            b.start_s, b.window_s, b.segments, b.speech_ratio
        )  # fmt: skip
        assert (a.time_since_speech_s, a.in_speech, a.decided_s) == (
            b.time_since_speech_s, b.in_speech, b.decided_s
        )  # fmt: skip
        for x, y in ((a.probabilities, b.probabilities), (a.speech, b.speech), (a.drop, b.drop)):
            assert x.dtype == y.dtype
            np.testing.assert_array_equal(x, y)
    assert empty > len(script) // 20  # the short cut ran (3 chunks in 4)
    assert fast.finish().segments == slow.finish().segments
    assert fast.totals == slow.totals and len(fast.totals.segments) == 2


def test_trimming_scores_every_chunk_whatever_the_batch() -> None:
    # with trimming the decision gates the audio, so it may not wait for a batch
    tracker = VoiceActivity(
        ScriptedEngine([0.9] * 10), VadConfig(batch_ms=400, trim_silence_over_s=1.0)
    )
    assert tracker.batch == 0
    assert tracker.process(np.zeros(4 * WINDOW, np.float32)).probabilities.size == 4
