"""Turn one MQTT message into a checked payload or a named reason to drop it (pure).

The dashboard reads what any client on the broker may write, so nothing reaches the fleet model
before it has passed the device's own JSON Schemas (`edge_recorder/fleet/schemas/`). The
validators are compiled once at import, by fastjsonschema into plain Python (~25 us a status,
where jsonschema's interpreter takes ~375 us: the largest cost of a 1,000-device fleet). A
rejected message becomes an `Invalid` with a short reason built from schema paths and keywords
only, never from the payload's text, so logs and the device page cannot replay what an
attacker published. JSON parsing is bounded: the size is capped before parsing, numbers longer
than 64 characters and NaN/Infinity are refused, and nesting too deep for the decoder is a
`not_json`, not a crash.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from typing import Literal

import fastjsonschema

from edge_recorder.fleet import SCHEMA_DIR

BadKind = Literal["too_large", "not_json", "schema", "wrong_device", "flood"]
BAD_KINDS: tuple[BadKind, ...] = ("too_large", "not_json", "schema", "wrong_device", "flood")
Leaf = Literal["availability", "status", "events", "response"]

DEVICE_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
MAX_NUMBER_CHARS = 64
_SCHEMA_OF: dict[str, str] = {
    "availability": "availability",
    "status": "status",
    "events": "event",
    "response": "command-response",
}
_ISO = re.compile(r"^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(\.\d+)?Z$")


@dataclass(frozen=True)
class Valid:
    """A message that passed its schema (or a bare `online`/`offline` availability)."""

    device_id: str
    leaf: Leaf
    body: dict[str, object] | None  # None only for plain-text availability (then `plain` is set)
    plain: str | None = None


@dataclass(frozen=True)
class Invalid:
    """A message the dashboard drops; `device_id` None when the topic names no valid device."""

    device_id: str | None
    kind: BadKind
    reason: str


Validate = Callable[[object], object]


@cache
def _schema(name: str) -> dict[str, object]:
    schema: dict[str, object] = json.loads(
        (SCHEMA_DIR / f"{name}.schema.json").read_text(encoding="utf-8")
    )
    return schema


@cache
def _validator(name: str) -> Validate:
    # The schemas declare draft 2020-12 but use only keywords draft-07 has (no $defs, $ref,
    # prefixItems or unevaluated*), which is what fastjsonschema compiles. No format checks:
    # every date-time field also carries a strict pattern, and `parse_at` rejects impossible
    # dates.
    schema = {**_schema(name), "$schema": "http://json-schema.org/draft-07/schema#"}
    validate: Validate = fastjsonschema.compile(schema, use_formats=False)
    return validate


def _property_names(node: object) -> set[str]:
    names: set[str] = set()
    if isinstance(node, dict):
        props = node.get("properties")
        if isinstance(props, dict):
            names.update(props)
        for value in node.values():
            names |= _property_names(value)
    elif isinstance(node, list):
        for value in node:
            names |= _property_names(value)
    return names


# Names a schema path may show in a reason: only those the schemas define, never a key an
# arbitrary payload chose (an event's `details` keys are the payload's own).
_KNOWN_NAMES: set[str] = set()
for _name in _SCHEMA_OF.values():  # compile once, at import, not on the first message
    _validator(_name)
    _KNOWN_NAMES |= _property_names(_schema(_name))


def parse_at(text: str) -> float:
    """`2026-11-21T08:00:30.123Z` -> epoch seconds; ValueError for anything else."""
    match = _ISO.match(text)
    if match is None:
        raise ValueError("not an ISO UTC time")
    year, month, day, hour, minute, second = (int(g) for g in match.groups()[:6])
    fraction = match.group(7)
    base = datetime(year, month, day, hour, minute, second, tzinfo=UTC).timestamp()
    return base + (float(fraction) if fraction else 0.0)


def _number(text: str) -> str:
    if len(text) > MAX_NUMBER_CHARS:
        raise ValueError("number too long")
    return text


def _refuse_constant(_text: str) -> float:
    raise ValueError("NaN and Infinity are not JSON")


def _loads(text: str) -> object:
    return json.loads(
        text,
        parse_int=lambda s: int(_number(s)),
        parse_float=lambda s: float(_number(s)),
        parse_constant=_refuse_constant,
    )


def split_topic(prefix: str, topic: str) -> tuple[str, Leaf] | None:
    """`<prefix>/<dev>/{availability,status,events,cmd/response}` -> (dev, leaf); else None."""
    head = f"{prefix}/"
    if not topic.startswith(head):
        return None
    parts = topic[len(head) :].split("/")
    if len(parts) == 2 and parts[1] in ("availability", "status", "events"):
        leaf: Leaf = parts[1]  # type: ignore[assignment]
    elif len(parts) == 3 and parts[1] == "cmd" and parts[2] == "response":
        leaf = "response"
    else:
        return None
    return parts[0], leaf


def _schema_reason(error: fastjsonschema.JsonSchemaValueException) -> str:
    path = [
        p if p.isdigit() or p in _KNOWN_NAMES else "?"
        for p in error.path[1:6]  # path[0] is fastjsonschema's root name, "data"
    ]
    return f"schema: /{'/'.join(path)} {error.rule}"


def classify(prefix: str, topic: str, payload: bytes, max_bytes: int) -> Valid | Invalid | None:
    """Check one message; None for a topic the dashboard does not read or an empty payload."""
    parts = split_topic(prefix, topic)
    if parts is None or not payload:
        return None
    device_id, leaf = parts
    if not DEVICE_ID.match(device_id):
        return Invalid(None, "wrong_device", "device id in the topic is not valid")
    if len(payload) > max_bytes:
        return Invalid(device_id, "too_large", f"{len(payload)} bytes > {max_bytes}")
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError:
        return Invalid(device_id, "not_json", "not UTF-8")
    if leaf == "availability":
        bare = text.strip()
        if bare in ("online", "offline"):
            return Valid(device_id, leaf, None, plain=bare)
    try:
        body = _loads(text)
    except (ValueError, RecursionError):
        return Invalid(device_id, "not_json", "not JSON (or numbers/nesting out of bounds)")
    if not isinstance(body, dict):
        return Invalid(device_id, "schema", "schema: / type")
    try:
        _validator(_SCHEMA_OF[leaf])(body)
    except fastjsonschema.JsonSchemaValueException as error:
        return Invalid(device_id, "schema", _schema_reason(error))
    at = body.get("at")
    try:
        parse_at(at if isinstance(at, str) else "")
    except ValueError:
        return Invalid(device_id, "schema", "schema: /at date-time")
    if leaf != "availability" and body.get("device_id") != device_id:
        return Invalid(device_id, "wrong_device", "device_id in the body differs from the topic")
    return Valid(device_id, leaf, body)
