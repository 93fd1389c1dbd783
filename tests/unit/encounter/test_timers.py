"""Timers of the encounter controller driven by an injected clock: warnings, auto-stop,
maximum duration, identify, digital-silence alarm; plus invariants over random event runs."""

from __future__ import annotations

import uuid

from hypothesis import given, settings
from hypothesis import strategies as st

from edge_recorder.encounter import events as ev
from edge_recorder.encounter.controller import EncounterController, Limits
from edge_recorder.encounter.events import (
    Alarm,
    CloseRecording,
    EndEncounter,
    Indicator,
    OpenRecording,
    Sound,
    Warn,
    WarnCleared,
)
from edge_recorder.panel.patterns import PATTERNS
from tests.unit.encounter.test_controller import G1, C, counter_uuids

NO_AUTO_STOP = dict(auto_stop_after_s=0.0, auto_stop_warning_s=0.0)


def started(limits: Limits, at: float = 0.0) -> EncounterController:
    ctl = EncounterController(limits, new_uuid=counter_uuids())
    assert ctl.handle(ev.Start(), at).ok
    return ctl


def test_max_duration_warns_then_closes_at_the_limit() -> None:
    ctl = started(Limits(max_duration_s=100, warn_before_s=10, **NO_AUTO_STOP))
    assert ctl.next_deadline() == 90
    assert ctl.handle(ev.Tick(), 89.9).effects == ()
    warned = ctl.handle(ev.Tick(), 90.0)
    assert warned.effects == (
        Warn("max_duration", 10.0),
        Sound("warning"),
        Indicator("recording_warning"),
    )
    assert ctl.device_status(90.0).warnings == ["max_duration"]
    assert ctl.next_deadline() == 100
    assert ctl.handle(ev.Tick(), 99.0).effects == ()  # warned once only
    closed = ctl.handle(ev.Tick(), 100.0)
    assert closed.effects == (
        CloseRecording(C, 1, G1, "max_duration"),
        WarnCleared("max_duration"),
        EndEncounter(C, 1, "max_duration"),
        Sound("stop"),
        Indicator("stopping"),
    )
    assert ctl.state == "stopping"


def test_max_duration_counts_recorded_time_not_pauses() -> None:
    ctl = started(Limits(max_duration_s=100, warn_before_s=10, **NO_AUTO_STOP))
    ctl.handle(ev.Pause(), 50.0)
    assert ctl.next_deadline() is None
    assert ctl.handle(ev.Tick(), 5000.0).effects == ()
    ctl.handle(ev.Resume(), 6000.0)
    assert ctl.next_deadline() == 6040.0
    assert Warn("max_duration", 10.0) in ctl.handle(ev.Tick(), 6040.0).effects
    end = ctl.handle(ev.Tick(), 6050.0)
    assert EndEncounter(C, 2, "max_duration") in end.effects


def test_service_limits_replace_the_config_fallback() -> None:
    ctl = started(Limits(max_duration_s=5400, warn_before_s=300, **NO_AUTO_STOP))
    assert ctl.handle(ev.ServiceLimits(max_duration_s=60, warn_before_s=5), 1.0).ok
    assert ctl.next_deadline() == 55
    assert Warn("max_duration", 5.0) in ctl.handle(ev.Tick(), 55.0).effects
    assert ctl.handle(ev.Tick(), 60.0).state == "stopping"


def test_auto_stop_after_silence_is_warned_and_speech_resets_it() -> None:
    ctl = started(Limits(max_duration_s=1e9, auto_stop_after_s=600, auto_stop_warning_s=60))
    ctl.handle(ev.SpeechDetected(), 100.0)
    assert ctl.next_deadline() == 640
    assert ctl.handle(ev.Tick(), 639.0).effects == ()
    warned = ctl.handle(ev.Tick(), 640.0)
    assert warned.effects == (
        Warn("auto_stop", 60.0),
        Sound("warning"),
        Indicator("recording_warning"),
    )
    spoke = ctl.handle(ev.SpeechDetected(), 650.0)
    assert spoke.effects == (WarnCleared("auto_stop"), Indicator("recording"))
    assert ctl.next_deadline() == 1190
    assert ctl.handle(ev.Tick(), 1249.0).effects[0] == Warn("auto_stop", 1.0)
    stopped = ctl.handle(ev.Tick(), 1250.0)
    assert stopped.effects[:3] == (
        CloseRecording(C, 1, G1, "no_speech"),
        WarnCleared("auto_stop"),
        EndEncounter(C, 1, "no_speech"),
    )


def test_a_paused_encounter_is_auto_stopped_too() -> None:
    ctl = started(Limits(max_duration_s=1e9, auto_stop_after_s=600, auto_stop_warning_s=60))
    ctl.handle(ev.Pause(), 10.0)
    ctl.handle(ev.SpeechDetected(), 100.0)  # not capturing: does not count
    assert ctl.handle(ev.Tick(), 540.0).effects == (
        Warn("auto_stop", 60.0),
        Sound("warning"),
        Indicator("warning"),
    )
    resumed = ctl.handle(ev.Resume(), 550.0)  # a deliberate resume restarts the clock
    assert WarnCleared("auto_stop") in resumed.effects
    assert ctl.next_deadline() == 1090
    ctl.handle(ev.Pause(), 560.0)
    stopped = ctl.handle(ev.Tick(), 1150.0)
    assert stopped.effects == (  # no tick fell in the warning window: no warning to clear
        EndEncounter(C, 2, "no_speech"),
        Sound("stop"),
        Indicator("stopping"),
    )


def test_auto_stop_zero_means_never() -> None:
    ctl = started(Limits(max_duration_s=1e9, **NO_AUTO_STOP))
    ctl.handle(ev.Pause(), 1.0)
    assert ctl.next_deadline() is None
    assert ctl.handle(ev.Tick(), 1e8).effects == ()


def test_digital_silence_alarms_at_once_and_recording_continues() -> None:
    ctl = started(Limits(**NO_AUTO_STOP))
    silent = ctl.handle(ev.DigitalSilence(True), 5.0)
    assert silent.effects == (
        Alarm("mic_silent", True),
        Sound("alarm"),
        Indicator("recording_alarm"),
    )
    assert ctl.state == "recording"
    assert ctl.device_status(6.0).alarms == ["mic_silent"]
    back = ctl.handle(ev.DigitalSilence(False), 8.0)
    assert back.effects == (Alarm("mic_silent", False), Indicator("recording"))
    ctl.handle(ev.DigitalSilence(True), 9.0)
    paused = ctl.handle(ev.Pause(), 10.0)  # not capturing: no mic_silent alarm
    assert Alarm("mic_silent", False) in paused.effects
    resumed = ctl.handle(ev.Resume(), 11.0)  # still silent when capture restarts
    assert resumed.effects[:3] == (
        Alarm("mic_silent", True),
        Sound("alarm"),
        Indicator("recording_alarm"),
    )


def test_identify_shows_for_its_duration_then_reverts() -> None:
    ctl = EncounterController(Limits(identify_s=10), new_uuid=counter_uuids())
    assert ctl.handle(ev.Identify(), 0.0).effects == (Sound("identify"), Indicator("identify"))
    assert ctl.next_deadline() == 10
    assert ctl.handle(ev.Tick(), 9.9).effects == ()
    assert ctl.handle(ev.Tick(), 10.0).effects == (Indicator("idle"),)
    assert ctl.next_deadline() is None


EVENTS = st.sampled_from(
    [
        ev.RecordPressed(),
        ev.RecordHeld(),
        ev.PrivacyPressed(),
        ev.Start(),
        ev.Stop(),
        ev.Pause(),
        ev.Resume(),
        ev.Identify(),
        ev.Shutdown(),
        ev.Tick(),
        ev.SpeechDetected(),
        ev.MicLost(),
        ev.MicBack(),
        ev.DigitalSilence(True),
        ev.DigitalSilence(False),
        ev.SpoolFull(hard=False),
        ev.SpoolFull(hard=True),
        ev.SpoolOk(),
        ev.ServiceRefused(),
        ev.ServiceOk(),
        ev.Closed(),
        ev.Uplink(online=True, backlog=1),
        ev.Uplink(online=False, backlog=0),
        ev.ServiceLimits(300, 30),
    ]
)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(EVENTS, st.floats(0, 400)), max_size=60))
def test_random_runs_keep_the_invariants(steps: list[tuple[ev.Event, float]]) -> None:
    """Never raises; the light is a capture pattern exactly while a recording is open, and it
    is switched on before capture starts and off only after capture stopped; recordings open
    and close in strict alternation with consecutive sequence numbers."""
    ctl = EncounterController(
        Limits(max_duration_s=300, warn_before_s=30, auto_stop_after_s=200, auto_stop_warning_s=20),
        new_uuid=lambda: uuid.uuid4(),
    )
    now, open_seq, last_seq = 0.0, None, 0
    shown = "idle"
    for event, step in steps:
        now += step
        outcome = ctl.handle(event, now)
        assert outcome.ok or outcome.error
        for effect in outcome.effects:
            if isinstance(effect, Indicator):
                shown = effect.pattern
                if not PATTERNS[shown].capturing:
                    assert open_seq is None  # the light goes off only after capture stopped
            if isinstance(effect, OpenRecording):
                assert open_seq is None and PATTERNS[shown].capturing  # light first
                assert effect.seq in (1, last_seq + 1)
                open_seq = last_seq = effect.seq
            if isinstance(effect, CloseRecording):
                assert effect.seq == open_seq
                open_seq = None
            if isinstance(effect, ev.BeginEncounter):
                last_seq = 0
        assert PATTERNS[shown].capturing == (open_seq is not None) == (ctl.phase == "recording")
        assert shown == ctl.indicator
