"""AWS's own service model for Connect Health (botocore's `connecthealth` service-2.json),
as a validator: the emulator checks every request and event against it, and the tests check
the device's events with it, so neither side retypes a shape, an enum or a pattern by hand.

botocore's own ParamValidator checks types, required members and sizes but not enums,
patterns or unions; this walks the same shapes and checks all of them. Patterns use the
`regex` module: AWS writes them with Unicode classes (`\\p{L}`) that `re` lacks.
"""

from __future__ import annotations

import base64
import binascii
from functools import cache
from typing import Any

import botocore.session  # type: ignore[import-untyped]
import regex

SERVICE = "connecthealth"
OPERATION = "StartMedicalScribeListeningSession"


@cache
def service_model() -> Any:
    """botocore's ServiceModel of Connect Health (untyped library object)."""
    return botocore.session.get_session().get_service_model(SERVICE)


def shape(name: str) -> Any:
    return service_model().shape_for(name)


def input_event_shapes() -> dict[str, Any]:
    """`MedicalScribeInputStream` member name (the `:event-type`) → its event shape."""
    stream = shape("MedicalScribeInputStream")
    return dict(stream.members)


def enum(name: str) -> list[str]:
    return list(shape(name).enum)


def validate(value: Any, shape_: Any, path: str = "") -> list[str]:
    """Every way `value` (a parsed JSON document) breaks the shape; [] when it fits."""
    where = path or shape_.name
    kind = shape_.type_name
    if kind == "structure":
        if not isinstance(value, dict):
            return [f"{where}: must be an object"]
        problems = [f"{where}.{m}: required" for m in shape_.required_members if m not in value]
        problems += [f"{where}.{k}: not in the model" for k in value if k not in shape_.members]
        if shape_.metadata.get("union") and len(value) != 1:
            problems.append(f"{where}: exactly one of {', '.join(shape_.members)}")
        for key, item in value.items():
            if key in shape_.members:
                problems += validate(item, shape_.members[key], f"{where}.{key}")
        return problems
    if kind == "list":
        if not isinstance(value, list):
            return [f"{where}: must be a list"]
        problems = _bounds(len(value), shape_, where, "items")
        for i, item in enumerate(value):
            problems += validate(item, shape_.member, f"{where}[{i}]")
        return problems
    if kind == "string":
        if not isinstance(value, str):
            return [f"{where}: must be a string"]
        problems = _bounds(len(value), shape_, where, "characters")
        if shape_.enum and value not in shape_.enum:
            problems.append(f"{where}: {value!r} is not one of {', '.join(shape_.enum)}")
        pattern = shape_.metadata.get("pattern")
        if pattern and not regex.fullmatch(pattern, value):
            problems.append(f"{where}: does not match {pattern}")
        return problems
    if kind in ("integer", "long"):
        if isinstance(value, bool) or not isinstance(value, int):
            return [f"{where}: must be an integer"]
        return _bounds(value, shape_, where, "")
    if kind == "boolean":
        return [] if isinstance(value, bool) else [f"{where}: must be true or false"]
    if kind == "double":
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        return [] if ok else [f"{where}: must be a number"]
    if kind == "blob":
        if not isinstance(value, str):
            return [f"{where}: must be base64 text"]
        try:
            base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            return [f"{where}: is not base64"]
        return []
    return [f"{where}: the validator does not know type {kind}"]


def _bounds(n: int, shape_: Any, where: str, unit: str) -> list[str]:
    low, high = shape_.metadata.get("min"), shape_.metadata.get("max")
    suffix = f" {unit}" if unit else ""
    if low is not None and n < low:
        return [f"{where}: at least {low}{suffix}"]
    if high is not None and n > high:
        return [f"{where}: at most {high}{suffix}"]
    return []
