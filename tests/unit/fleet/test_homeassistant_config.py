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
