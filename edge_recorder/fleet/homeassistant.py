"""Home Assistant MQTT discovery: the device and its sensors appear in an existing dashboard.

Every entity reads the one retained status document through a `value_template`, so discovery
adds no extra publishing. Availability follows our availability topic (JSON `state`), and the
configs are retained and re-announced whenever Home Assistant says `online` on
`homeassistant/status` (it forgets non-retained configs when it restarts).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from edge_recorder.fleet.topics import HA_PREFIX, DeviceTopics

MANUFACTURER = "edge-recorder project"
MODEL = "edge-recorder exam-room recorder"


@dataclass(frozen=True)
class Entity:
    component: str  # sensor | binary_sensor | button
    key: str
    name: str
    template: str | None = None
    extra: tuple[tuple[str, Any], ...] = ()


ENTITIES: tuple[Entity, ...] = (
    Entity("sensor", "state", "State", "{{ value_json.state }}", (("icon", "mdi:microphone"),)),
    Entity(
        "sensor",
        "backlog_recordings",
        "Backlog recordings",
        "{{ value_json.backlog.recordings }}",
        (("state_class", "measurement"), ("icon", "mdi:tray-full")),
    ),
    Entity(
        "sensor",
        "backlog_bytes",
        "Backlog size",
        "{{ value_json.backlog.bytes }}",
        (
            ("device_class", "data_size"),
            ("unit_of_measurement", "B"),
            ("state_class", "measurement"),
        ),
    ),
    Entity(
        "sensor",
        "backlog_oldest_age",
        "Oldest backlog age",
        "{{ value_json.backlog.oldest_age_s or 0 }}",
        (("device_class", "duration"), ("unit_of_measurement", "s")),
    ),
    Entity(
        "sensor",
        "mic_level",
        "Mic level",
        "{{ value_json.mic.level_dbfs }}",
        (("unit_of_measurement", "dBFS"), ("state_class", "measurement")),
    ),
    Entity(
        "sensor",
        "disk_free",
        "Disk free",
        "{{ value_json.system.disk_free_bytes }}",
        (
            ("device_class", "data_size"),
            ("unit_of_measurement", "B"),
            ("entity_category", "diagnostic"),
        ),
    ),
    Entity(
        "sensor",
        "cpu_temp",
        "CPU temperature",
        "{{ value_json.system.cpu_temp_c }}",
        (
            ("device_class", "temperature"),
            ("unit_of_measurement", "°C"),
            ("state_class", "measurement"),
            ("entity_category", "diagnostic"),
        ),
    ),
    Entity(
        "sensor",
        "last_error",
        "Last error",
        "{{ value_json.last_error.code if value_json.last_error else 'none' }}",
        (("entity_category", "diagnostic"),),
    ),
    Entity(  # follows the current delivery error: OFF again once delivery works
        "binary_sensor",
        "delivery_problem",
        "Delivery problem",
        "{{ 'ON' if value_json.error else 'OFF' }}",
        (("device_class", "problem"),),
    ),
    Entity(  # no mic, digital silence, or a faulty capsule the array's beam left out
        "binary_sensor",
        "mic_problem",
        "Mic problem",
        "{{ 'ON' if (not value_json.mic.present or value_json.mic.digital_silence"
        " or 'array_mic_fault' in value_json.warnings) else 'OFF' }}",
        (("device_class", "problem"),),
    ),
    Entity(
        "binary_sensor",
        "alarm",
        "Alarm",
        "{{ 'ON' if value_json.alarms else 'OFF' }}",
        (("device_class", "problem"),),
    ),
    Entity("button", "identify", "Identify", None, (("device_class", "identify"),)),
)


def node_id(device_id: str) -> str:
    return f"edge_recorder_{device_id}"


def device_block(device_id: str, location: str, version: str, hw: str | None) -> dict[str, Any]:
    block: dict[str, Any] = {
        "identifiers": [node_id(device_id)],
        "name": f"edge-recorder {device_id}",
        "manufacturer": MANUFACTURER,
        "model": MODEL,
        "sw_version": version,
    }
    if hw:
        block["hw_version"] = hw
    if location:
        block["suggested_area"] = location
    return block


def discovery_messages(
    topics: DeviceTopics, *, location: str, version: str, hw: str | None = None
) -> list[tuple[str, dict[str, Any]]]:
    """(topic, config) for every entity, to publish retained."""
    node = node_id(topics.device_id)
    device = device_block(topics.device_id, location, version, hw)
    availability = {
        "topic": topics.availability,
        "value_template": "{{ value_json.state }}",
        "payload_available": "online",
        "payload_not_available": "offline",
    }
    out = []
    for entity in ENTITIES:
        config: dict[str, Any] = {
            "name": entity.name,
            "unique_id": f"{node}_{entity.key}",
            "availability": [availability],
            "device": device,
            "origin": {"name": "edge-recorder", "sw_version": version},
            "qos": 1,
        }
        if entity.component == "button":
            config["command_topic"] = topics.command(entity.key)
            config["payload_press"] = json.dumps({"request_id": f"homeassistant-{entity.key}"})
        else:
            config["state_topic"] = topics.status
            config["value_template"] = entity.template
        if entity.component == "binary_sensor":
            config["payload_on"] = "ON"
            config["payload_off"] = "OFF"
        config.update(dict(entity.extra))
        out.append((f"{HA_PREFIX}/{entity.component}/{node}/{entity.key}/config", config))
    return out
