"""Every payload against its JSON Schema, and the PHI rule: no patient field, no audio."""

from __future__ import annotations

import json
from functools import cache
from typing import Any

import jsonschema

from edge_recorder.fleet import SCHEMA_DIR
from edge_recorder.fleet.payloads import find_forbidden
from edge_recorder.fleet.topics import HA_PREFIX, split_device_topic
from edge_recorder.status import StartContext
from tests.integration.fleet.fakes import PATIENT_CORRELATION_ID

LEAF_SCHEMA = {
    "availability": "availability",
    "status": "status",
    "events": "event",
}
START_CONTEXT_FIELDS = set(StartContext.model_fields)


@cache
def validator(name: str) -> jsonschema.Draft202012Validator:
    schema = json.loads((SCHEMA_DIR / f"{name}.schema.json").read_text())
    return jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())


def all_keys(value: Any) -> set[str]:
    keys: set[str] = set()
    if isinstance(value, dict):
        for key, item in value.items():
            keys.add(key)
            keys |= all_keys(item)
    elif isinstance(value, list):
        for item in value:
            keys |= all_keys(item)
    return keys


def assert_patient_free(payload: bytes) -> None:
    text = payload.decode("utf-8")
    assert PATIENT_CORRELATION_ID not in text, text
    assert "PATIENT" not in text, text
    body = json.loads(text)
    keys = all_keys(body)
    assert "correlation_id" not in keys
    assert not keys & START_CONTEXT_FIELDS, keys & START_CONTEXT_FIELDS
    assert not {"audio", "pcm", "samples"} & keys
    assert find_forbidden(body) == []


def schema_for(prefix: str, topic: str) -> str | None:
    """The schema name for a topic we publish; None for topics tests write (requests)."""
    if topic.startswith(f"{HA_PREFIX}/") and topic.endswith("/config"):
        return "ha-discovery"
    if topic.endswith("/cmd/response"):
        return "command-response"
    parts = split_device_topic(prefix, topic)
    return LEAF_SCHEMA.get(parts[1]) if parts else None


def validate_published(prefix: str, topic: str, payload: bytes) -> str | None:
    """Validate one published message; returns the schema used (None: not ours)."""
    name = schema_for(prefix, topic)
    if name is None or not payload:
        return None
    body = json.loads(payload)
    validator(name).validate(body)
    assert_patient_free(payload)
    return name
