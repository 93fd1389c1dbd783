"""Payload building is pure: what goes out matches the schemas and carries no patient data."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge_recorder.fleet import payloads
from edge_recorder.fleet.payloads import (
    StatusMeta,
    availability_payload,
    event_payload,
    find_forbidden,
    response_payload,
    sanitize_details,
    scrub_text,
    status_payload,
)
from edge_recorder.fleet.sysinfo import SystemInfo, parse_throttled
from edge_recorder.status import (
    ArrayMicLeftOut,
    BacklogStatus,
    DeviceStatus,
    ErrorInfo,
    MicStatus,
    encounter_ref,
)
from tests.integration.fleet.checks import assert_patient_free, validator

CID = "enc-PATIENT-4711-secret"
REF = encounter_ref(CID, b"device key" * 3)  # what the controller puts in the status
NOW = datetime(2026, 11, 21, 8, 0, 0, tzinfo=UTC)
META = StatusMeta("exam-1", "Room 1", 3, 30.0, "5", events_dropped=2, events_queued=1)


def recording_status() -> DeviceStatus:
    return DeviceStatus(
        state="recording",
        correlation_id=CID,
        encounter_ref=REF,
        recording_seq=2,
        encounter_elapsed_s=12.345,
        alarms=[f"upload failed for {CID}"],
        warnings=["max_duration"],
        online=True,
        last_delivery_at=datetime(2026, 11, 21, 7, 59, tzinfo=UTC),
        backlog=BacklogStatus(recordings=1, bytes=1000, oldest_age_s=5.5),
        mic=MicStatus(
            present=True,
            device="hw:CARD=Array",
            level_dbfs=-math.inf,
            peak_dbfs=float("nan"),
            digital_silence=True,
        ),
        last_error=ErrorInfo(
            code="http_500", message=f"server said no to {CID} Bearer abc.def", at=NOW
        ),
    )


def test_status_names_the_encounter_only_by_ref() -> None:
    body = status_payload(recording_status(), SystemInfo(), META, NOW)
    validator("status").validate(body)
    data = payloads.encode(body)
    assert_patient_free(data)
    assert body["encounter_ref"] == REF
    assert body["alarms"] == [f"upload failed for ref:{REF}"]
    assert body["warnings"] == ["max_duration"]
    assert body["last_error"]["message"] == f"server said no to ref:{REF} Bearer [redacted]"
    assert body["mic"]["level_dbfs"] is None and body["mic"]["peak_dbfs"] is None  # -inf, NaN
    assert body["encounter_elapsed_s"] == 12.3
    assert body["mqtt"] == {
        "protocol": "5",
        "events_dropped": 2,
        "events_queued": 1,
        "commands_rejected": 0,
        "commands_limited": 0,
        "commands_ignored": 0,
        "replies_dropped": 0,
    }
    assert body["at"] == "2026-11-21T08:00:00.000Z"


def test_status_keeps_an_explicit_encounter_ref_and_system_fields() -> None:
    status = DeviceStatus(encounter_ref="abcdef012345")
    info = SystemInfo(
        disk_free_bytes=5,
        cpu_temp_c=51.26,
        throttling=parse_throttled("throttled=0x5"),
        version="9.9",
    )
    body = status_payload(status, info, META, NOW)
    validator("status").validate(body)
    assert body["encounter_ref"] == "abcdef012345"
    assert body["system"]["cpu_temp_c"] == 51.3
    assert body["system"]["throttled"]["under_voltage"] is True
    assert body["system"]["throttled"]["throttled"] is True
    assert body["system"]["throttled"]["freq_capped"] is False


def test_the_array_mics_left_out_are_published_by_number_and_reason() -> None:
    left = [ArrayMicLeftOut(mic=3, reason="silent"), ArrayMicLeftOut(mic=5, reason="loud")]
    status = DeviceStatus(warnings=["array_mic_fault"], mic=MicStatus(array_left_out=left))
    body = status_payload(status, SystemInfo(), META, NOW)
    validator("status").validate(body)
    assert body["mic"]["array_left_out"] == [
        {"mic": 3, "reason": "silent"}, {"mic": 5, "reason": "loud"},
    ]  # fmt: skip
    assert status_payload(DeviceStatus(), SystemInfo(), META, NOW)["mic"]["array_left_out"] == []
    older = status_payload(DeviceStatus(), SystemInfo(), META, NOW)
    del older["mic"]["array_left_out"]  # a device from before the field: still valid
    validator("status").validate(older)


text = st.text(max_size=40)


@settings(max_examples=60, deadline=None)
@given(
    state=st.sampled_from(["idle", "recording", "paused", "stopping", "error"]),
    cid=st.one_of(st.none(), st.from_regex(r"[A-Za-z0-9_|-]{1,40}", fullmatch=True)),
    level=st.one_of(st.none(), st.floats(max_value=0), st.just(math.nan)),
    alarms=st.lists(text, max_size=3),
    message=text,
    age=st.one_of(st.none(), st.floats(min_value=0, max_value=1e9)),
)
def test_any_status_validates_and_never_leaks_the_correlation_id(
    state, cid, level, alarms, message, age
) -> None:
    status = DeviceStatus(
        state=state,
        correlation_id=cid,
        alarms=alarms,
        error_reason=message,
        mic=MicStatus(level_dbfs=level, last_error=message),
        backlog=BacklogStatus(oldest_age_s=age),
    )
    body = status_payload(status, SystemInfo(), META, NOW)
    validator("status").validate(body)
    encoded = payloads.encode(body).decode()
    assert "correlation_id" not in encoded
    if cid and len(cid) >= 8:
        assert json.dumps(cid)[1:-1] not in json.dumps(body["alarms"] + [body["error_reason"]])


def test_status_signature_ignores_moving_levels_but_not_state() -> None:
    a = DeviceStatus(mic=MicStatus(level_dbfs=-40))
    b = DeviceStatus(mic=MicStatus(level_dbfs=-20), backlog=BacklogStatus(bytes=99))
    assert payloads.status_signature(a) == payloads.status_signature(b)
    assert payloads.status_signature(a) != payloads.status_signature(DeviceStatus(state="error"))
    c = DeviceStatus(backlog=BacklogStatus(recordings=1))
    assert payloads.status_signature(a) != payloads.status_signature(c)
    d = DeviceStatus(warnings=["auto_stop"])
    assert payloads.status_signature(a) != payloads.status_signature(d)


def test_availability_payloads() -> None:
    for state, reason in (("online", "connected"), ("offline", "lost"), ("offline", "shutdown")):
        body = availability_payload(state, 7, reason, NOW)  # type: ignore[arg-type]
        validator("availability").validate(body)
        assert body["birth_seq"] == 7


def test_sanitize_details_drops_patient_keys_and_unknown_shapes() -> None:
    clean, dropped = sanitize_details(
        {
            "correlation_id": CID,
            "external_user_id": "dr-x",
            "data": {"mrn": 1},
            "Context": "x",
            "bytes": 10,
            "ratio": 0.12345,
            "bad key": 1,
            "audio": b"\x00\x01",
            "note_text": f"about {CID}",
            "nested": [1, 2],
            "inf": math.inf,
        },
        {CID: REF},
    )
    assert clean == {
        "encounter_ref": REF,
        "bytes": 10,
        "ratio": 0.123,
        "note_text": f"about ref:{REF}",
        "inf": None,
    }
    assert set(dropped) == {"external_user_id", "data", "Context", "bad key", "audio", "nested"}
    # an id whose keyed ref is not known here is hidden, never hashed without the key
    unknown, _ = sanitize_details({"correlation_id": CID, "note_text": f"about {CID}"})
    assert unknown == {"note_text": "about [encounter]"}


def test_event_and_response_payloads_validate() -> None:
    details, _ = sanitize_details({"recordings": 2, "correlation_id": CID})
    event = event_payload(
        device_id="exam-1",
        instance="0a1b2c3d",
        birth_seq=3,
        seq=1,
        event="encounter_delivered",
        at=NOW,
        encounter=REF,
        message=f"done {CID}",
        details=details,
        secrets={CID: REF},
    )
    validator("event").validate(event)
    assert_patient_free(payloads.encode(event))
    ok = response_payload(
        device_id="exam-1",
        request_id="r1",
        command="ping",
        ok=True,
        at=NOW,
        state="idle",
        result={"pong": True},
    )
    bad = response_payload(
        device_id="exam-1",
        request_id=None,
        command=None,
        ok=False,
        at=NOW,
        error_code="invalid_json",
        error_message="body is not UTF-8 JSON",
    )
    refused = response_payload(
        device_id="exam-1",
        request_id="r2",
        command="pause",
        ok=False,
        at=NOW,
        error_code="rejected",
        error_message="idle",
        error_reason="no_encounter",
    )
    odd = response_payload(
        device_id="exam-1",
        request_id="r3",
        command="pause",
        ok=False,
        at=NOW,
        error_code="rejected",
        error_reason="Not An Identifier!",
    )
    for body in (ok, bad, refused, odd):
        validator("command-response").validate(body)
    assert ok["error"] is None and bad["error"]["code"] == "invalid_json"
    assert refused["error"]["reason"] == "no_encounter" and odd["error"]["reason"] is None


def test_scrub_text_truncates_and_redacts() -> None:
    assert scrub_text(None) is None
    long = scrub_text("x" * 500)
    assert long is not None and len(long) == payloads.TEXT_LIMIT and long.endswith("…")
    token = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl"
    assert scrub_text(f"token {token}") == "token [redacted]"


def test_find_forbidden_and_encode() -> None:
    assert find_forbidden({"a": [{"correlationId": 1}], "ok": {"pcm": 2}}) == [
        "$.a[0].correlationId",
        "$.ok.pcm",
    ]
    assert find_forbidden({"clipped_samples": 1, "encounter_ref": "x"}) == []
    with pytest.raises(ValueError):
        payloads.encode({"x": math.nan})


@pytest.mark.parametrize(
    "name", ["availability", "status", "event", "command-request", "command-response"]
)
def test_schema_examples_are_valid_and_patient_free(name: str) -> None:
    schema = validator(name).schema
    assert schema["examples"]
    for example in schema["examples"]:
        validator(name).validate(example)
        if name != "command-request":  # requests are inbound and may carry EHR context
            assert_patient_free(json.dumps(example).encode())
