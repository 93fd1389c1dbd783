"""MicHealth: the status shows the newest levels and the running counts, and events go out
on changes only; the levels are kept as the chunk's Meters and turned into a status on read."""

from __future__ import annotations

import numpy as np
import pytest

from edge_recorder.audio.dsp import Meters
from edge_recorder.audio.vad import VadUpdate
from edge_recorder.capture.mic import MicHealth
from edge_recorder.encounter import events as ev


def meters(sum_squares: float, peak: float, clipped: int = 0, silent: bool = False) -> Meters:
    return Meters(1600, sum_squares, peak, clipped, 0, 0.0, silent, 0)


def test_status_shows_the_newest_levels_and_the_clipped_total() -> None:
    health = MicHealth("hw", lambda e: None)
    assert health.status.level_dbfs is None and health.status.device == "hw"
    health.meters(meters(1600 * 0.25, 0.5, clipped=3), constant_throughout=False)
    health.xrun()
    health.meters(meters(1600 * 0.01, 0.2, clipped=4), constant_throughout=False)
    status = health.status
    assert status.level_dbfs == pytest.approx(-20.0)
    assert status.peak_dbfs == pytest.approx(-14.0)
    assert status.clipped_samples == 7 and status.xruns == 1 and not status.digital_silence


def test_presence_and_silence_post_on_change_only() -> None:
    posted: list[ev.Event] = []
    health = MicHealth("hw", posted.append)
    health.lost("no such card", announce=True)
    health.lost("still none", announce=False)
    health.back()
    health.back()
    health.meters(meters(0.0, 0.0, silent=True), constant_throughout=True)
    health.meters(meters(0.0, 0.0, silent=False), constant_throughout=True)  # kept: constant
    health.meters(meters(1.0, 0.1), constant_throughout=False)
    assert posted == [
        ev.MicLost("no such card"),
        ev.MicBack(),
        ev.DigitalSilence(True),
        ev.DigitalSilence(False),
    ]
    assert health.status.present and health.status.last_error is None


def test_speech_is_signalled_at_most_once_a_second() -> None:
    posted: list[ev.Event] = []
    health = MicHealth("hw", posted.append)
    update = VadUpdate(
        start_s=0.0,
        window_s=0.032,
        probabilities=np.ones(1, np.float32),
        speech=np.ones(1, np.bool_),
        drop=np.zeros(1, np.bool_),
        segments=[],
        speech_ratio=1.0,
        time_since_speech_s=0.0,
        in_speech=True,
        decided_s=0.032,
    )
    health.vad(update)
    health.vad(update)
    health.vad(None)
    assert posted == [ev.SpeechDetected()]
