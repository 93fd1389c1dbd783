"""Home Assistant discovery configs are well-formed and point at our topics."""

from __future__ import annotations

from edge_recorder.fleet import payloads
from edge_recorder.fleet.homeassistant import ENTITIES, discovery_messages
from edge_recorder.fleet.topics import DeviceTopics
from tests.integration.fleet.checks import assert_patient_free, validator


def test_discovery_messages() -> None:
    topics = DeviceTopics("site", "exam-7")
    messages = discovery_messages(topics, location="", version="1.2.3", hw=None)
    assert len(messages) == len(ENTITIES)
    ids = [config["unique_id"] for _, config in messages]
    assert len(set(ids)) == len(ids)
    for topic, config in messages:
        validator("ha-discovery").validate(config)
        assert_patient_free(payloads.encode(config))
        assert topic.startswith("homeassistant/") and topic.endswith("/config")
        assert config["availability"][0]["topic"] == "site/exam-7/availability"
        assert config["device"]["sw_version"] == "1.2.3"
        assert "hw_version" not in config["device"] and "suggested_area" not in config["device"]


def test_the_mic_problem_sensor_follows_the_mic_and_the_arrays_faulty_capsule() -> None:
    """Rendered as Home Assistant renders it (Jinja2, the status document as `value_json`)."""
    from datetime import UTC, datetime

    import jinja2

    from edge_recorder.fleet.payloads import StatusMeta, status_payload
    from edge_recorder.fleet.sysinfo import SystemInfo
    from edge_recorder.status import ArrayMicLeftOut, DeviceStatus, MicStatus

    (sensor,) = [e for e in ENTITIES if e.key == "mic_problem"]
    assert sensor.template is not None
    template = jinja2.Template(sensor.template)
    meta = StatusMeta("exam-7", "", 1, 30.0, "5")

    def state(status: DeviceStatus) -> str:
        body = status_payload(status, SystemInfo(), meta, datetime.now(UTC))
        return template.render(value_json=body)

    assert state(DeviceStatus(mic=MicStatus(present=True))) == "OFF"
    assert state(DeviceStatus(mic=MicStatus(present=False))) == "ON"
    assert state(DeviceStatus(mic=MicStatus(present=True, digital_silence=True))) == "ON"
    faulty = MicStatus(present=True, array_left_out=[ArrayMicLeftOut(mic=3, reason="silent")])
    assert state(DeviceStatus(mic=faulty, warnings=["array_mic_fault"])) == "ON"
    assert state(DeviceStatus(mic=MicStatus(present=True), warnings=["max_duration"])) == "OFF"
