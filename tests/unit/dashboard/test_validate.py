"""classify: which topics are read, what passes, and why the rest is refused."""

from __future__ import annotations

import json
from functools import cache
from typing import Any

import jsonschema
import pytest

from edge_recorder.dashboard import validate
from edge_recorder.dashboard.validate import Invalid, Valid, classify, parse_at
from edge_recorder.fleet import SCHEMA_DIR
from tests.unit.dashboard import payloads as P

MAX = 65536


@cache
def schema_validator(name: str) -> jsonschema.Draft202012Validator:
    schema = json.loads((SCHEMA_DIR / f"{name}.schema.json").read_text())
    return jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())


def run(leaf: str, body: dict[str, Any] | bytes, device: str = "room-1") -> Valid | Invalid | None:
    payload = body if isinstance(body, bytes) else P.encode(body)
    return classify(P.PREFIX, P.topic(device, leaf), payload, MAX)


def test_test_payloads_are_schema_valid() -> None:
    bodies = {
        "availability": [P.availability(), P.availability("offline", 3, "shutdown")],
        "status": [
            P.status("room-1"),
            P.status(
                "room-1",
                state="recording",
                backlog={"recordings": 2, "bytes": 9, "oldest_age_s": 5.0},
                throttled={"under_voltage": True},
            ),
        ],
        "event": [P.event("room-1", 1), P.event("room-1", 2, kind="alarm", severity="error")],
        "command-response": [P.response("room-1"), P.response("room-1", ok=False)],
    }
    for name, items in bodies.items():
        for body in items:
            errors = list(schema_validator(name).iter_errors(body))
            assert errors == [], (name, errors)


@pytest.mark.parametrize(
    ("leaf", "body"),
    [
        ("availability", P.availability()),
        ("status", P.status("room-1")),
        ("events", P.event("room-1", 4)),
        ("cmd/response", P.response("room-1")),
    ],
)
def test_valid_payloads_pass_with_their_body(leaf: str, body: dict[str, Any]) -> None:
    item = run(leaf, body)
    assert isinstance(item, Valid)
    assert item.device_id == "room-1"
    assert item.leaf == ("response" if leaf == "cmd/response" else leaf)
    assert item.body == body
    assert item.plain is None


@pytest.mark.parametrize(("text", "plain"), [(b"online", "online"), (b" offline\n", "offline")])
def test_plain_availability_text(text: bytes, plain: str) -> None:
    assert run("availability", text) == Valid("room-1", "availability", None, plain=plain)


def test_plain_text_is_only_accepted_on_availability() -> None:
    item = run("status", b"online")
    assert isinstance(item, Invalid) and item.kind == "not_json"


@pytest.mark.parametrize(
    "topic",
    [
        "edge-recorder/room-1/cmd/identify",  # requests (ours or other tools')
        "edge-recorder/room-1/other",
        "edge-recorder/room-1/status/extra",
        "other-prefix/room-1/status",
        "edge-recorder/status",
        "homeassistant/sensor/edge_recorder_room-1/state/config",
    ],
)
def test_topics_the_dashboard_does_not_read(topic: str) -> None:
    assert classify(P.PREFIX, topic, P.encode(P.status("room-1")), MAX) is None


def test_an_empty_payload_is_a_retained_clear_not_an_error() -> None:
    assert run("status", b"") is None


@pytest.mark.parametrize("device", ["bad.id", "x" * 65, "", "sp ace"])
def test_invalid_device_id_in_topic_is_unattributed(device: str) -> None:
    item = classify(P.PREFIX, f"{P.PREFIX}/{device}/status", b"{}", MAX)
    assert item == Invalid(None, "wrong_device", "device id in the topic is not valid")


def test_too_large_is_refused_before_parsing() -> None:
    item = classify(P.PREFIX, P.topic("room-1", "status"), b"\xff" * 101, 100)
    assert isinstance(item, Invalid)
    assert (item.device_id, item.kind) == ("room-1", "too_large")
    exact = P.encode(P.status("room-1"))
    assert isinstance(classify(P.PREFIX, P.topic("room-1", "status"), exact, len(exact)), Valid)


@pytest.mark.parametrize(
    "payload",
    [
        b"\xff\xfe not utf-8",
        b"{not json",
        b'{"v": NaN}',
        b'{"v": Infinity}',
        b'{"v": ' + b"1" * 65 + b"}",
        b'{"v": 1.' + b"5" * 70 + b"}",
        b"[" * 30_000 + b"]" * 30_000,  # deeper than the decoder goes: refused, no crash
    ],
)
def test_not_json(payload: bytes) -> None:
    item = run("status", payload)
    assert isinstance(item, Invalid) and item.kind == "not_json", item


def test_schema_failures_name_the_place_never_the_payload_text() -> None:
    secret = "Jane-Doe-MRN-12345"
    extra_key = run("status", {**P.status("room-1"), secret: secret})
    bad_value = run("status", P.status("room-1", state=secret))
    nested = run("status", P.status("room-1", mic={"level_dbfs": 3.0}))
    missing = P.status("room-1")
    del missing["backlog"]
    for item in (extra_key, bad_value, nested, run("status", missing)):
        assert isinstance(item, Invalid) and item.kind == "schema", item
        assert secret not in item.reason
        assert item.reason.startswith("schema: /")
    assert isinstance(nested, Invalid) and nested.reason == "schema: /mic/level_dbfs maximum"
    assert isinstance(bad_value, Invalid) and bad_value.reason == "schema: /state enum"


def test_details_keys_from_the_payload_are_not_echoed() -> None:
    body = P.event("room-1", 1)
    body["details"] = {"patient_name_jane_doe": {"nested": 1}}
    item = run("events", body)
    assert isinstance(item, Invalid) and item.kind == "schema"
    assert "jane" not in item.reason


def test_a_json_array_is_a_schema_failure() -> None:
    item = run("events", b"[1, 2]")
    assert isinstance(item, Invalid) and item.kind == "schema"


def test_an_impossible_date_matching_the_pattern_is_refused() -> None:
    item = run("status", P.status("room-1") | {"at": "2026-13-45T25:00:00Z"})
    assert item == Invalid("room-1", "schema", "schema: /at date-time")


@pytest.mark.parametrize(
    ("leaf", "body"),
    [
        ("status", P.status("room-2")),
        ("events", P.event("room-2", 1)),
        ("cmd/response", P.response("room-2")),
    ],
)
def test_body_device_must_match_the_topic(leaf: str, body: dict[str, Any]) -> None:
    item = run(leaf, body, device="room-1")
    assert isinstance(item, Invalid)
    assert (item.device_id, item.kind) == ("room-1", "wrong_device")


def test_parse_at() -> None:
    assert parse_at("2026-11-21T08:00:00Z") == P.T0
    assert parse_at("2026-11-21T08:00:30.250Z") == P.T0 + 30.25
    assert parse_at(P.iso(P.T0 + 12.5)) == P.T0 + 12.5
    for bad in ("2026-11-21 08:00:00Z", "2026-11-21T08:00:00+00:00", "2026-02-30T00:00:00Z"):
        with pytest.raises(ValueError):
            parse_at(bad)


def test_validators_are_compiled_once() -> None:
    before = validate._validator.cache_info()
    assert before.currsize == 4  # compiled at import
    for seq in range(1, 20):
        run("events", P.event("room-1", seq))
        run("status", P.status("room-1"))
    after = validate._validator.cache_info()
    assert after.misses == before.misses
    assert after.hits > before.hits


# Keywords draft 2020-12 has and draft-07 (what fastjsonschema compiles) does not.
DRAFT_2020_ONLY = {
    "$defs", "$anchor", "$dynamicRef", "$dynamicAnchor", "prefixItems", "dependentRequired",
    "dependentSchemas", "unevaluatedItems", "unevaluatedProperties", "minContains", "maxContains",
}  # fmt: skip


def keywords(node: object) -> set[str]:
    found: set[str] = set()
    if isinstance(node, dict):
        found.update(node)
        for value in node.values():
            found |= keywords(value)
    elif isinstance(node, list):
        for value in node:
            found |= keywords(value)
    return found


@pytest.mark.parametrize("name", ["availability", "status", "event", "command-response"])
def test_the_schemas_use_only_keywords_the_compiled_validator_knows(name: str) -> None:
    schema = json.loads((SCHEMA_DIR / f"{name}.schema.json").read_text())
    assert keywords(schema) & DRAFT_2020_ONLY == set()


def mutations(body: dict[str, Any]) -> list[dict[str, Any]]:
    """The body and some ways to break it: a missing key, a wrong type, an extra key, a
    value out of range, a nested wrong type."""
    out = [body]
    for key in list(body)[:6]:
        broken = dict(body)
        del broken[key]
        out.append(broken)
        out.append({**body, key: [1, 2]})
    out.append({**body, "unexpected": 1})
    for key, value in body.items():
        if isinstance(value, dict):
            for inner in list(value)[:3]:
                out.append({**body, key: {**value, inner: {"x": 1}}})
    return out


@pytest.mark.parametrize(
    ("leaf", "name", "body"),
    [
        ("status", "status", P.status("room-1")),
        ("availability", "availability", P.availability()),
        ("events", "event", P.event("room-1", 1)),
        ("cmd/response", "command-response", P.response("room-1")),
    ],
)
def test_the_compiled_validator_agrees_with_jsonschema(
    leaf: str, name: str, body: dict[str, Any]
) -> None:
    """fastjsonschema (compiled as draft-07, the dashboard's) and jsonschema (draft 2020-12,
    the reference) give the same verdict on valid payloads and on broken ones."""
    reference = schema_validator(name)
    verdicts = []
    for candidate in mutations(body):
        ours = run(leaf, candidate)
        assert ours is not None, f"{leaf} is not a topic the dashboard reads"
        expected = reference.is_valid(candidate)
        got = isinstance(ours, Valid) or (isinstance(ours, Invalid) and ours.kind != "schema")
        verdicts.append((expected, got))
    assert all(expected == got for expected, got in verdicts), verdicts
    assert sum(1 for expected, _ in verdicts if not expected) >= 5  # the mutations do break it
