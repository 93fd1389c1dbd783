"""Every transition of the encounter controller, as a table: state x event → state + effects."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

import pytest

from edge_recorder.encounter import events as ev
from edge_recorder.encounter.controller import EncounterController, Limits
from edge_recorder.encounter.events import (
    Alarm,
    BeginEncounter,
    CloseRecording,
    Effect,
    EndEncounter,
    Indicator,
    OpenRecording,
    Sound,
)

C = str(uuid.UUID(int=1))  # correlation id of the first encounter
G1 = str(uuid.UUID(int=2))  # its first recording
G2 = str(uuid.UUID(int=3))  # its second recording


def counter_uuids() -> Callable[[], uuid.UUID]:
    numbers: Iterator[int] = iter(range(1, 1_000_000))
    return lambda: uuid.UUID(int=next(numbers))


def controller(limits: Limits | None = None) -> EncounterController:
    return EncounterController(limits or Limits(), new_uuid=counter_uuids())


SETUPS: dict[str, list[ev.Event]] = {
    "idle": [],
    "recording": [ev.RecordPressed()],
    "paused": [ev.RecordPressed(), ev.Pause()],
    "stopping": [ev.RecordPressed(), ev.Stop()],
    "error": [ev.MicLost("unplugged")],  # no encounter, cannot start
    "interrupted": [ev.RecordPressed(), ev.MicLost("unplugged")],  # encounter open, mic gone
}
REPORTED = {"interrupted": "error"}


def in_state(name: str) -> EncounterController:
    ctl = controller()
    for event in SETUPS[name]:
        assert ctl.handle(event, 0.0).ok
    return ctl


REFUSED = (Sound("refused"),)
START = (BeginEncounter(C), Indicator("recording"), OpenRecording(C, 1, G1), Sound("start"))
RESUME = (Indicator("recording"), OpenRecording(C, 2, G2), Sound("start"))
IDENTIFY = (Sound("identify"), Indicator("identify"))


def close(reason: ev.CloseReason) -> CloseRecording:
    return CloseRecording(C, 1, G1, reason)


def end(reason: ev.CloseReason) -> tuple[Effect, ...]:
    return (EndEncounter(C, 1, reason), Sound("stop"), Indicator("stopping"))


def alarm(name: str, indicator: ev.IndicatorName | None = None) -> tuple[Effect, ...]:
    tail: tuple[Effect, ...] = (Indicator(indicator),) if indicator else ()
    return (Alarm(name, True), Sound("alarm"), *tail)


OK = True
NO = False
# (state, event, accepted, state after, effects in order, refusal code)
ROWS: list[tuple[str, ev.Event, bool, str, tuple[Effect, ...], str | None]] = [
    # --- idle ---------------------------------------------------------------------------
    ("idle", ev.RecordPressed(), OK, "recording", START, None),
    ("idle", ev.RecordHeld(), NO, "idle", REFUSED, "no_encounter"),
    ("idle", ev.PrivacyPressed(), NO, "idle", REFUSED, "no_encounter"),
    ("idle", ev.Start(), OK, "recording", START, None),
    ("idle", ev.Stop(), NO, "idle", (), "no_encounter"),
    ("idle", ev.Pause(), NO, "idle", (), "no_encounter"),
    ("idle", ev.Resume(), NO, "idle", (), "no_encounter"),
    ("idle", ev.Identify(), OK, "idle", IDENTIFY, None),
    ("idle", ev.Shutdown(), OK, "idle", (), None),
    ("idle", ev.Tick(), OK, "idle", (), None),
    ("idle", ev.SpeechDetected(), OK, "idle", (), None),
    ("idle", ev.MicLost(), OK, "error", alarm("no_mic", "error"), None),
    ("idle", ev.MicBack(), OK, "idle", (), None),
    ("idle", ev.DigitalSilence(True), OK, "idle", (), None),
    ("idle", ev.LiveSilent(True), OK, "idle", alarm("live_silent"), None),
    ("idle", ev.DeliveryDisabled(True), OK, "idle", alarm("delivery_disabled", "error"), None),
    ("idle", ev.SpoolFull(), OK, "error", alarm("spool_full", "error"), None),
    ("idle", ev.SpoolOk(), OK, "idle", (), None),
    ("idle", ev.StorageFault("EIO"), OK, "error", alarm("storage_error", "error"), None),
    ("idle", ev.StorageOk(), OK, "idle", (), None),
    ("idle", ev.ServiceRefused("403"), OK, "error", alarm("service_refusing", "error"), None),
    ("idle", ev.ServiceOk(), OK, "idle", (), None),
    ("idle", ev.Closed(), NO, "idle", (), "nothing_closing"),
    ("idle", ev.Uplink(online=True, backlog=2), OK, "idle", (Indicator("delivering"),), None),
    ("idle", ev.ServiceLimits(3600, 120), OK, "idle", (), None),
    # --- recording ----------------------------------------------------------------------
    ("recording", ev.RecordPressed(), OK, "stopping", (close("stop"), *end("stop")), None),
    (
        "recording",
        ev.RecordHeld(),
        OK,
        "paused",
        (close("pause"), Sound("pause"), Indicator("paused")),
        None,
    ),
    (
        "recording",
        ev.PrivacyPressed(),
        OK,
        "paused",
        (close("pause"), Sound("pause"), Indicator("paused")),
        None,
    ),
    ("recording", ev.Start(), NO, "recording", (), "already_active"),
    ("recording", ev.Stop(), OK, "stopping", (close("stop"), *end("stop")), None),
    (
        "recording",
        ev.Pause(),
        OK,
        "paused",
        (close("pause"), Sound("pause"), Indicator("paused")),
        None,
    ),
    ("recording", ev.Resume(), NO, "recording", (), "already_recording"),
    (
        "recording",
        ev.Identify(),
        OK,
        "recording",
        (Sound("identify"), Indicator("recording_identify")),
        None,
    ),
    ("recording", ev.Shutdown(), OK, "stopping", (close("shutdown"), *end("shutdown")), None),
    ("recording", ev.Tick(), OK, "recording", (), None),
    ("recording", ev.SpeechDetected(), OK, "recording", (), None),
    (
        "recording",
        ev.MicLost(),
        OK,
        "interrupted",
        (close("mic_lost"), *alarm("no_mic", "error")),
        None,
    ),
    ("recording", ev.MicBack(), OK, "recording", (), None),
    (
        "recording",
        ev.DigitalSilence(True),
        OK,
        "recording",
        alarm("mic_silent", "recording_alarm"),
        None,
    ),
    (
        "recording",
        ev.LiveSilent(True),
        OK,
        "recording",
        alarm("live_silent", "recording_alarm"),
        None,
    ),
    (
        "recording",
        ev.DeliveryDisabled(True),
        OK,
        "recording",
        alarm("delivery_disabled", "recording_alarm"),
        None,
    ),
    (
        "recording",
        ev.SpoolFull(hard=False),
        OK,
        "recording",
        alarm("spool_full", "recording_alarm"),
        None,
    ),
    (
        "recording",
        ev.SpoolFull(hard=True),
        OK,
        "interrupted",
        (close("spool_full"), *alarm("spool_full", "error")),
        None,
    ),
    ("recording", ev.SpoolOk(), OK, "recording", (), None),
    (
        "recording",
        ev.StorageFault("EIO"),
        OK,
        "interrupted",
        (close("storage_error"), *alarm("storage_error", "error")),
        None,
    ),
    ("recording", ev.StorageOk(), OK, "recording", (), None),
    (
        "recording",
        ev.ServiceRefused(),
        OK,
        "recording",
        alarm("service_refusing", "recording_alarm"),
        None,
    ),
    ("recording", ev.ServiceOk(), OK, "recording", (), None),
    ("recording", ev.Closed(), NO, "recording", (), "nothing_closing"),
    ("recording", ev.Uplink(online=False, backlog=3), OK, "recording", (), None),
    ("recording", ev.ServiceLimits(3600, 120), OK, "recording", (), None),
    # --- paused -------------------------------------------------------------------------
    ("paused", ev.RecordPressed(), OK, "stopping", end("stop"), None),
    ("paused", ev.RecordHeld(), OK, "recording", RESUME, None),
    ("paused", ev.PrivacyPressed(), OK, "recording", RESUME, None),
    ("paused", ev.Start(), NO, "paused", (), "already_active"),
    ("paused", ev.Stop(), OK, "stopping", end("stop"), None),
    ("paused", ev.Pause(), NO, "paused", (), "already_paused"),
    ("paused", ev.Resume(), OK, "recording", RESUME, None),
    ("paused", ev.Identify(), OK, "paused", IDENTIFY, None),
    ("paused", ev.Shutdown(), OK, "stopping", end("shutdown"), None),
    ("paused", ev.Tick(), OK, "paused", (), None),
    ("paused", ev.SpeechDetected(), OK, "paused", (), None),
    ("paused", ev.MicLost(), OK, "paused", alarm("no_mic"), None),
    ("paused", ev.MicBack(), OK, "paused", (), None),
    ("paused", ev.DigitalSilence(True), OK, "paused", (), None),
    ("paused", ev.LiveSilent(True), OK, "paused", alarm("live_silent"), None),
    ("paused", ev.DeliveryDisabled(True), OK, "paused", alarm("delivery_disabled"), None),
    ("paused", ev.SpoolFull(hard=True), OK, "paused", alarm("spool_full"), None),
    ("paused", ev.SpoolOk(), OK, "paused", (), None),
    ("paused", ev.StorageFault("EIO"), OK, "paused", alarm("storage_error"), None),
    ("paused", ev.StorageOk(), OK, "paused", (), None),
    ("paused", ev.ServiceRefused(), OK, "paused", alarm("service_refusing"), None),
    ("paused", ev.ServiceOk(), OK, "paused", (), None),
    ("paused", ev.Closed(), NO, "paused", (), "nothing_closing"),
    ("paused", ev.Uplink(online=True, backlog=1), OK, "paused", (), None),
    ("paused", ev.ServiceLimits(3600, 120), OK, "paused", (), None),
    # --- stopping -----------------------------------------------------------------------
    ("stopping", ev.RecordPressed(), NO, "stopping", REFUSED, "busy_stopping"),
    ("stopping", ev.RecordHeld(), NO, "stopping", REFUSED, "busy_stopping"),
    ("stopping", ev.PrivacyPressed(), NO, "stopping", REFUSED, "busy_stopping"),
    ("stopping", ev.Start(), NO, "stopping", (), "busy_stopping"),
    ("stopping", ev.Stop(), NO, "stopping", (), "already_stopping"),
    ("stopping", ev.Pause(), NO, "stopping", (), "busy_stopping"),
    ("stopping", ev.Resume(), NO, "stopping", (), "busy_stopping"),
    ("stopping", ev.Identify(), OK, "stopping", IDENTIFY, None),
    ("stopping", ev.Shutdown(), OK, "stopping", (), None),
    ("stopping", ev.Tick(), OK, "stopping", (), None),
    ("stopping", ev.SpeechDetected(), OK, "stopping", (), None),
    ("stopping", ev.MicLost(), OK, "stopping", alarm("no_mic"), None),
    ("stopping", ev.MicBack(), OK, "stopping", (), None),
    ("stopping", ev.DigitalSilence(True), OK, "stopping", (), None),
    ("stopping", ev.LiveSilent(True), OK, "stopping", alarm("live_silent"), None),
    ("stopping", ev.DeliveryDisabled(True), OK, "stopping", alarm("delivery_disabled"), None),
    ("stopping", ev.SpoolFull(), OK, "stopping", alarm("spool_full"), None),
    ("stopping", ev.SpoolOk(), OK, "stopping", (), None),
    ("stopping", ev.StorageFault("EIO"), OK, "stopping", alarm("storage_error"), None),
    ("stopping", ev.StorageOk(), OK, "stopping", (), None),
    ("stopping", ev.ServiceRefused(), OK, "stopping", alarm("service_refusing"), None),
    ("stopping", ev.ServiceOk(), OK, "stopping", (), None),
    ("stopping", ev.Closed(), OK, "idle", (Indicator("idle"),), None),
    ("stopping", ev.Uplink(online=True, backlog=1), OK, "stopping", (), None),
    ("stopping", ev.ServiceLimits(3600, 120), OK, "stopping", (), None),
    # --- error: no encounter, a fault blocks starting ------------------------------------
    ("error", ev.RecordPressed(), NO, "error", REFUSED, "no_mic"),
    ("error", ev.RecordHeld(), NO, "error", REFUSED, "no_encounter"),
    ("error", ev.PrivacyPressed(), NO, "error", REFUSED, "no_encounter"),
    ("error", ev.Start(), NO, "error", (), "no_mic"),
    ("error", ev.Stop(), NO, "error", (), "no_encounter"),
    ("error", ev.Pause(), NO, "error", (), "no_encounter"),
    ("error", ev.Resume(), NO, "error", (), "no_encounter"),
    ("error", ev.Identify(), OK, "error", IDENTIFY, None),
    ("error", ev.Shutdown(), OK, "error", (), None),
    ("error", ev.Tick(), OK, "error", (), None),
    ("error", ev.SpeechDetected(), OK, "error", (), None),
    ("error", ev.MicLost(), OK, "error", (), None),
    ("error", ev.MicBack(), OK, "idle", (Alarm("no_mic", False), Indicator("idle")), None),
    ("error", ev.DigitalSilence(True), OK, "error", (), None),
    ("error", ev.LiveSilent(True), OK, "error", alarm("live_silent"), None),
    ("error", ev.DeliveryDisabled(True), OK, "error", alarm("delivery_disabled"), None),
    ("error", ev.SpoolFull(), OK, "error", alarm("spool_full"), None),
    ("error", ev.SpoolOk(), OK, "error", (), None),
    ("error", ev.StorageFault("EIO"), OK, "error", alarm("storage_error"), None),
    ("error", ev.StorageOk(), OK, "error", (), None),
    ("error", ev.ServiceRefused(), OK, "error", alarm("service_refusing"), None),
    ("error", ev.ServiceOk(), OK, "error", (), None),
    ("error", ev.Closed(), NO, "error", (), "nothing_closing"),
    ("error", ev.Uplink(online=True, backlog=4), OK, "error", (), None),
    ("error", ev.ServiceLimits(3600, 120), OK, "error", (), None),
    # --- interrupted: encounter open, capture blocked by a fault (reported as error) ------
    ("interrupted", ev.RecordPressed(), OK, "stopping", end("stop"), None),
    ("interrupted", ev.RecordHeld(), OK, "paused", (Sound("pause"), Indicator("paused")), None),
    ("interrupted", ev.PrivacyPressed(), OK, "paused", (Sound("pause"), Indicator("paused")), None),
    ("interrupted", ev.Start(), NO, "interrupted", (), "already_active"),
    ("interrupted", ev.Stop(), OK, "stopping", end("stop"), None),
    ("interrupted", ev.Pause(), OK, "paused", (Sound("pause"), Indicator("paused")), None),
    ("interrupted", ev.Resume(), NO, "interrupted", (), "no_mic"),
    ("interrupted", ev.Identify(), OK, "interrupted", IDENTIFY, None),
    ("interrupted", ev.Shutdown(), OK, "stopping", end("shutdown"), None),
    ("interrupted", ev.Tick(), OK, "interrupted", (), None),
    ("interrupted", ev.SpeechDetected(), OK, "interrupted", (), None),
    ("interrupted", ev.MicLost(), OK, "interrupted", (), None),
    ("interrupted", ev.MicBack(), OK, "recording", (Alarm("no_mic", False), *RESUME), None),
    ("interrupted", ev.DigitalSilence(True), OK, "interrupted", (), None),
    ("interrupted", ev.LiveSilent(True), OK, "interrupted", alarm("live_silent"), None),
    ("interrupted", ev.DeliveryDisabled(True), OK, "interrupted", alarm("delivery_disabled"), None),
    ("interrupted", ev.SpoolFull(), OK, "interrupted", alarm("spool_full"), None),
    ("interrupted", ev.SpoolOk(), OK, "interrupted", (), None),
    ("interrupted", ev.StorageFault("EIO"), OK, "interrupted", alarm("storage_error"), None),
    ("interrupted", ev.StorageOk(), OK, "interrupted", (), None),
    ("interrupted", ev.ServiceRefused(), OK, "interrupted", alarm("service_refusing"), None),
    ("interrupted", ev.ServiceOk(), OK, "interrupted", (), None),
    ("interrupted", ev.Closed(), NO, "interrupted", (), "nothing_closing"),
    ("interrupted", ev.Uplink(online=True, backlog=1), OK, "interrupted", (), None),
    ("interrupted", ev.ServiceLimits(3600, 120), OK, "interrupted", (), None),
]


@pytest.mark.parametrize(
    ("state", "event", "accepted", "after", "effects", "code"),
    ROWS,
    ids=[f"{row[0]}-{type(row[1]).__name__}-{i}" for i, row in enumerate(ROWS)],
)
def test_transition(
    state: str,
    event: ev.Event,
    accepted: bool,
    after: str,
    effects: tuple[Effect, ...],
    code: str | None,
) -> None:
    ctl = in_state(state)
    assert ctl.state == REPORTED.get(state, state)
    outcome = ctl.handle(event, 5.0)
    assert outcome.ok is accepted
    assert outcome.code == code
    assert (outcome.error is None) is accepted
    assert outcome.effects == effects
    assert outcome.state == ctl.state == REPORTED.get(after, after)
    expected_phase = "idle" if after == "error" else after
    assert ctl.phase == expected_phase


def test_table_covers_every_state_and_event_type() -> None:
    event_types = set(ev.Event.__args__)  # type: ignore[attr-defined]
    for state in SETUPS:
        covered = {type(row[1]) for row in ROWS if row[0] == state}
        assert covered == event_types, f"{state}: missing {event_types - covered}"


@pytest.mark.parametrize(
    ("faults", "code"),
    [
        ([ev.SpoolFull(hard=False)], "spool_full"),
        ([ev.ServiceRefused("401")], "service_refusing"),
        ([ev.ServiceRefused("401"), ev.MicLost()], "no_mic"),  # the most basic fault first
    ],
)
def test_start_refused_while_a_fault_stands(faults: list[ev.Event], code: str) -> None:
    ctl = controller()
    for fault in faults:
        ctl.handle(fault, 0.0)
    outcome = ctl.handle(ev.Start(), 1.0)
    assert (outcome.ok, outcome.code, ctl.error_reason) == (False, code, code)
    assert outcome.error is not None and outcome.error.startswith("cannot start: ")


def test_spool_full_interrupts_then_resumes_when_space_returns() -> None:
    ctl = in_state("recording")
    ctl.handle(ev.SpoolFull(hard=True), 1.0)
    assert (ctl.state, ctl.error_reason) == ("error", "spool_full")
    refused = ctl.handle(ev.Resume(), 2.0)
    assert (refused.ok, refused.code) == (False, "spool_full")
    back = ctl.handle(ev.SpoolFull(hard=False), 3.0)  # below the hard cap again
    assert ctl.state == "recording"
    assert back.effects == (
        Indicator("recording_alarm"),  # still above high water: recording, with an alarm
        OpenRecording(C, 2, G2),
        Sound("start"),
    )


def test_paused_resume_refused_while_the_mic_is_missing() -> None:
    ctl = in_state("paused")
    ctl.handle(ev.MicLost(), 1.0)
    outcome = ctl.handle(ev.Resume(), 2.0)
    assert (outcome.ok, outcome.code, ctl.state) == (False, "no_mic", "paused")
    ctl.handle(ev.MicBack(), 3.0)
    assert ctl.handle(ev.Resume(), 4.0).ok


def test_closed_with_a_standing_fault_rests_in_error() -> None:
    ctl = in_state("stopping")
    ctl.handle(ev.ServiceRefused("403"), 1.0)
    outcome = ctl.handle(ev.Closed(), 2.0)
    assert outcome.effects == (Indicator("error"),)
    assert (ctl.state, ctl.error_reason) == ("error", "service_refusing")


def test_each_start_and_resume_opens_the_next_sequence_with_a_new_guid() -> None:
    ctl = controller()
    opened: list[OpenRecording] = []
    for i, event in enumerate([ev.Start(), ev.Pause(), ev.Resume(), ev.Pause(), ev.Resume()]):
        outcome = ctl.handle(event, float(i))
        opened += [e for e in outcome.effects if isinstance(e, OpenRecording)]
    assert [o.seq for o in opened] == [1, 2, 3]
    assert len({o.guid for o in opened}) == 3 and C not in {o.guid for o in opened}
    assert {o.correlation_id for o in opened} == {C}
    stop = ctl.handle(ev.Stop(), 9.0)
    assert EndEncounter(C, 3, "stop") in stop.effects
    ctl.handle(ev.Closed(), 10.0)
    second = ctl.handle(ev.Start(), 11.0)  # a new encounter starts again at 1
    assert [e.seq for e in second.effects if isinstance(e, OpenRecording)] == [1]
    assert second.correlation_id not in (None, C)


def test_start_with_ehr_context_uses_its_correlation_id_and_hides_it() -> None:
    from edge_recorder.status import CommandRequest, StartContext

    context = StartContext(correlation_id="enc-42", external_user_id="dr-who", data={"mrn": "7"})
    ctl = controller()
    outcome = ctl.command(CommandRequest(name="start", context=context), 0.0)
    begin = outcome.effects[0]
    assert begin == BeginEncounter("enc-42", context)
    assert "dr-who" not in repr(begin) and "mrn" not in repr(outcome)
    result = outcome.to_result()
    assert result.ok and result.data == {"correlation_id": "enc-42", "recording_seq": 1}
    published = outcome.to_result(local=False)  # for MQTT: never the (EHR) correlation id
    assert published.data == {"encounter_ref": ctl.ref("enc-42"), "recording_seq": 1}
    assert ctl.device_status(1.0).correlation_id == "enc-42"


def test_commands_that_are_not_transitions_are_refused() -> None:
    from edge_recorder.status import CommandRequest

    ctl = controller()
    for name in ("status", "reload", "ping", "spool_retry"):
        outcome = ctl.command(CommandRequest.model_validate({"name": name}), 0.0)
        assert (outcome.ok, outcome.code, outcome.effects) == (False, "unsupported", ())
    refused = ctl.command(CommandRequest(name="stop"), 0.0).to_result()
    assert (refused.ok, refused.code, refused.state) == (False, "no_encounter", "idle")
    assert refused.error == "no encounter in progress"


def test_invalid_signals_are_refused_not_raised() -> None:
    ctl = controller()
    assert ctl.handle(ev.Uplink(online=True, backlog=-1), 0.0).code == "invalid"
    assert ctl.handle(ev.ServiceLimits(0, 10), 0.0).code == "invalid"
    assert ctl.handle(ev.ServiceLimits(float("nan"), 10), 0.0).code == "invalid"
    assert ctl.handle("garbage", 0.0).code == "unknown_event"  # type: ignore[arg-type]
    assert ctl.limits == Limits()


def test_device_status_during_an_encounter() -> None:
    from edge_recorder.status import BacklogStatus, DeviceStatus

    ctl = in_state("recording")
    ctl.handle(ev.DigitalSilence(True), 1.0)
    base = DeviceStatus(online=True, backlog=BacklogStatus(recordings=2, bytes=10))
    status = ctl.device_status(12.5, base)
    assert status.state == "recording" and status.correlation_id == C
    assert status.encounter_ref == ctl.ref(C) and status.recording_seq == 1
    assert status.encounter_elapsed_s == 12.5 and status.alarms == ["mic_silent"]
    assert status.backlog.recordings == 2 and status.online
    idle = controller().device_status(1.0)
    assert (idle.state, idle.correlation_id, idle.recording_seq, idle.alarms) == (
        "idle",
        None,
        None,
        [],
    )


def test_a_silent_live_service_is_an_alarm_until_live_answers_again() -> None:
    """Recording goes on (REST carries the audio), but status, MQTT and the LED say so."""
    ctl = in_state("recording")
    raised = ctl.handle(ev.LiveSilent(True), 1.0)
    assert Alarm("live_silent", True) in raised.effects and raised.state == "recording"
    assert ctl.device_status(2.0).alarms == ["live_silent"]
    cleared = ctl.handle(ev.LiveSilent(False), 3.0)
    assert Alarm("live_silent", False) in cleared.effects
    assert Indicator("recording") in cleared.effects
    assert ctl.device_status(4.0).alarms == []


def test_recording_is_allowed_while_delivery_is_disabled_with_the_alarm_shown() -> None:
    """An incomplete service config must not lose the visit: the audio waits in the spool
    until the config is fixed. But the device must not look healthy either: idle shows the
    error pattern (not the backlog blink), recording the alarm overlay."""
    ctl = in_state("idle")
    ctl.handle(ev.Uplink(online=False, backlog=3), 0.5)
    raised = ctl.handle(ev.DeliveryDisabled(True), 1.0)
    assert Indicator("error") in raised.effects
    assert ctl.device_status(1.5).alarms == ["delivery_disabled"]
    started = ctl.handle(ev.Start(), 2.0)
    assert started.ok and started.state == "recording"
    assert ctl.indicator == "recording_alarm"
    cleared = ctl.handle(ev.DeliveryDisabled(False), 3.0)
    assert Alarm("delivery_disabled", False) in cleared.effects
    assert ctl.indicator == "recording"


def test_a_storage_fault_is_named_as_such_and_capture_resumes_when_it_clears() -> None:
    """Not "no mic": the recording is interrupted with its own reason and comes back."""
    ctl = in_state("recording")
    out = ctl.handle(ev.StorageFault("No such file or directory (errno 2)"), 1.0)
    assert out.state == "error" and ctl.error_reason == "storage_error"
    assert close("storage_error") in out.effects
    back = ctl.handle(ev.StorageOk(), 2.0)
    assert back.state == "recording" and Alarm("storage_error", False) in back.effects
    idle = in_state("idle")
    idle.handle(ev.StorageFault("EIO"), 3.0)
    assert idle.handle(ev.Start(), 3.5).code == "storage_error"  # no new encounter meanwhile
