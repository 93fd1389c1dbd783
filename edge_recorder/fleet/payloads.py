"""Everything the device publishes, built as plain dicts by pure functions.

The one rule: nothing here may identify a patient or carry audio. Status is built field by
field from `DeviceStatus` (never dumped wholesale, so a field added there later cannot leak),
free text is scrubbed of the current correlation id and token shapes, and caller-supplied
details pass an allow-by-shape filter that drops patient-context keys.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from edge_recorder.fleet.sysinfo import SystemInfo
from edge_recorder.status import DeviceStatus, ErrorInfo
from edge_recorder.support.logs import redact_text

SCHEMA_VERSION = 1
AvailabilityState = Literal["online", "offline"]
AvailabilityReason = Literal["connected", "shutdown", "lost"]
Severity = Literal["info", "warning", "error"]
EventType = Literal[
    "started",
    "stopping",
    "encounter_started",
    "encounter_paused",
    "encounter_resumed",
    "encounter_stopped",
    "encounter_delivered",
    "recording_delivered",
    "alarm",
    "alarm_cleared",
    "error",
    "command",
]
EVENT_TYPES: tuple[str, ...] = EventType.__args__  # type: ignore[attr-defined]

# Keys that never appear anywhere in a payload (compared lower-case without '_' or '-'):
# StartContext's fields, audio, and credentials.
_FORBIDDEN = [
    *("correlation_id", "external_user_id", "ehr_instance_id", "data", "context"),
    *("audio", "pcm", "samples", "patient", "mrn", "transcript"),
    *("token", "access_token", "refresh_token", "password", "secret"),
]
FORBIDDEN_KEYS = frozenset(k.replace("_", "") for k in _FORBIDDEN)
_DETAIL_KEY = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
TEXT_LIMIT = 200

Scalar = str | int | float | bool | None
# What free text may quote, and what to put instead: correlation id -> its encounter_ref (the
# controller's, keyed by the device's spool key: `status.encounter_ref`). The fleet never holds
# that key, so a ref is only ever the one the status already carries.
Secrets = Mapping[str, str]
NO_SECRETS: Secrets = {}
UNKNOWN_REF = "[encounter]"


def is_forbidden_key(key: str) -> bool:
    return key.lower().replace("_", "").replace("-", "") in FORBIDDEN_KEYS


def find_forbidden(value: Any, path: str = "$") -> list[str]:
    """Paths of forbidden keys anywhere in a JSON-like value (the last check before sending)."""
    found: list[str] = []
    if isinstance(value, Mapping):
        for key, item in value.items():
            if is_forbidden_key(str(key)):
                found.append(f"{path}.{key}")
            found.extend(find_forbidden(item, f"{path}.{key}"))
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            found.extend(find_forbidden(item, f"{path}[{index}]"))
    return found


def iso(moment: datetime | None) -> str | None:
    """UTC ISO-8601 with a Z; naive datetimes are taken as UTC."""
    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def finite(value: float | None, digits: int = 1) -> float | None:
    """JSON has no -inf (digital silence is -inf dBFS): non-finite becomes null."""
    if value is None or not math.isfinite(value):
        return None
    return round(float(value), digits)


def scrub_text(
    text: str | None, secrets: Secrets = NO_SECRETS, limit: int = TEXT_LIMIT
) -> str | None:
    """Free text made safe: known correlation ids become their opaque ref, tokens are redacted."""
    if text is None:
        return None
    for secret, ref in secrets.items():
        if secret:
            text = text.replace(secret, f"ref:{ref}" if ref != UNKNOWN_REF else ref)
    text = redact_text(text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def sanitize_details(
    details: Mapping[str, Any] | None, secrets: Secrets = NO_SECRETS
) -> tuple[dict[str, Scalar], list[str]]:
    """(clean details, dropped keys): scalar values under short snake_case keys only.

    A `correlation_id` is turned into its `encounter_ref`, never passed on.
    """
    known = {s: ref for s, ref in secrets.items() if s}
    clean: dict[str, Scalar] = {}
    dropped: list[str] = []
    for key, value in (details or {}).items():
        if key == "correlation_id" and isinstance(value, str):
            ref = known.setdefault(value, UNKNOWN_REF)  # a ref needs the device's key
            if ref != UNKNOWN_REF:
                clean.setdefault("encounter_ref", ref)
            continue
        if not isinstance(key, str) or not _DETAIL_KEY.match(key) or is_forbidden_key(key):
            dropped.append(str(key)[:64])
            continue
        if isinstance(value, bool | int) or value is None:
            clean[key] = value
        elif isinstance(value, float):
            clean[key] = finite(value, 3)
        elif isinstance(value, str):
            clean[key] = scrub_text(value, known)
        else:  # bytes, containers, objects: shape unknown, so not published
            dropped.append(key)
    return clean, dropped


def availability_payload(
    state: AvailabilityState, birth_seq: int, reason: AvailabilityReason, at: datetime
) -> dict[str, Any]:
    """Retained presence. A will carries the birth_seq of the session it belongs to, so a
    dashboard can tell a late will (lower birth_seq) from a real death."""
    return {
        "v": SCHEMA_VERSION,
        "state": state,
        "birth_seq": birth_seq,
        "reason": reason,
        "at": iso(at),
    }


@dataclass(frozen=True)
class StatusMeta:
    """What the reporter adds to the daemon's status: identity, session and queue health."""

    device_id: str
    location: str
    birth_seq: int
    interval_s: float
    protocol: str
    events_dropped: int = 0
    events_queued: int = 0
    commands_rejected: int = 0
    commands_limited: int = 0
    commands_ignored: int = 0
    replies_dropped: int = 0


def _error(error: ErrorInfo | None, secrets: Secrets) -> dict[str, Any] | None:
    if error is None:
        return None
    return {
        "code": scrub_text(error.code, secrets, 64),
        "message": scrub_text(error.message, secrets),
        "at": iso(error.at),
    }


def _system(info: SystemInfo) -> dict[str, Any]:
    throttled = None
    if info.throttling is not None:
        throttled = {"raw": info.throttling.raw, **info.throttling.flags}
    return {
        "disk_free_bytes": info.disk_free_bytes,
        "disk_total_bytes": info.disk_total_bytes,
        "cpu_temp_c": finite(info.cpu_temp_c),
        "throttled": throttled,
        "uptime_s": finite(info.uptime_s, 0),
        "process_uptime_s": finite(info.process_uptime_s, 0),
        "version": info.version,
        "os": info.os,
        "kernel": info.kernel,
        "model": info.model,
        "ip": info.ip,
        "hostname": info.hostname,
    }


def status_payload(
    status: DeviceStatus, system: SystemInfo, meta: StatusMeta, at: datetime
) -> dict[str, Any]:
    """The retained status document (see schemas/status.schema.json)."""
    ref = status.encounter_ref
    secrets = {status.correlation_id: ref or UNKNOWN_REF} if status.correlation_id else {}
    mic = status.mic
    backlog = status.backlog
    return {
        "v": SCHEMA_VERSION,
        "device_id": meta.device_id,
        "location": meta.location,
        "at": iso(at),
        "birth_seq": meta.birth_seq,
        "interval_s": meta.interval_s,
        "state": status.state,
        "error_reason": scrub_text(status.error_reason, secrets),
        "encounter_ref": ref,
        "recording_seq": status.recording_seq,
        "encounter_elapsed_s": finite(status.encounter_elapsed_s),
        "alarms": [scrub_text(a, secrets, 64) for a in status.alarms],
        "warnings": [scrub_text(w, secrets, 64) for w in status.warnings],
        "uplink_online": status.online,
        "uplink_service": status.service,
        "last_delivery_at": iso(status.last_delivery_at),
        "error": _error(status.error, secrets),  # now; null once delivery works again
        "last_error": _error(status.last_error, secrets),  # the last one seen, kept
        "backlog": {
            "recordings": backlog.recordings,
            "bytes": backlog.bytes,
            "oldest_age_s": finite(backlog.oldest_age_s, 0),
            "quarantined": backlog.quarantined,
        },
        "mic": {
            "present": mic.present,
            "device": scrub_text(mic.device, secrets, 128),
            "level_dbfs": finite(mic.level_dbfs),
            "peak_dbfs": finite(mic.peak_dbfs),
            "clipped_samples": mic.clipped_samples,
            "xruns": mic.xruns,
            "digital_silence": mic.digital_silence,
            "last_error": scrub_text(mic.last_error, secrets),
            "array_left_out": [m.model_dump() for m in mic.array_left_out],
        },
        "system": _system(system),
        "mqtt": {
            "protocol": meta.protocol,
            "events_dropped": meta.events_dropped,
            "events_queued": meta.events_queued,
            "commands_rejected": meta.commands_rejected,
            "commands_limited": meta.commands_limited,
            "commands_ignored": meta.commands_ignored,
            "replies_dropped": meta.replies_dropped,
        },
    }


def status_signature(status: DeviceStatus) -> str:
    """The fields whose change is news (published at once); levels and byte counts that move
    every second wait for the periodic report."""
    mic = status.mic
    return json.dumps(
        [
            status.state,
            status.error_reason,
            status.encounter_ref,
            status.correlation_id is not None,
            status.recording_seq,
            status.alarms,
            status.warnings,
            status.online,
            iso(status.last_delivery_at),
            status.backlog.recordings,
            status.backlog.quarantined,
            mic.present,
            mic.device,
            mic.digital_silence,
            mic.last_error,
            status.error.code if status.error else None,
            status.last_error.model_dump(mode="json") if status.last_error else None,
        ],
        default=str,
    )


def event_payload(
    *,
    device_id: str,
    instance: str,
    birth_seq: int,
    seq: int,
    event: EventType,
    at: datetime,
    severity: Severity = "info",
    encounter: str | None = None,
    code: str | None = None,
    message: str | None = None,
    details: Mapping[str, Scalar] | None = None,
    secrets: Secrets = NO_SECRETS,
) -> dict[str, Any]:
    """One event (not retained). `seq` counts events since the process started (`instance`
    is random per process), so a gap tells a consumer that events were dropped while the
    broker was away, and (device_id, instance, seq) spots a QoS 1 duplicate."""
    return {
        "v": SCHEMA_VERSION,
        "device_id": device_id,
        "instance": instance,
        "birth_seq": birth_seq,
        "seq": seq,
        "type": event,
        "severity": severity,
        "at": iso(at),
        "encounter_ref": encounter,
        "code": scrub_text(code, secrets, 64),
        "message": scrub_text(message, secrets),
        "details": dict(details or {}),
    }


def response_payload(
    *,
    device_id: str,
    request_id: str | None,
    command: str | None,
    ok: bool,
    at: datetime,
    state: str | None = None,
    error_code: str | None = None,
    error_message: str | None = None,
    error_reason: str | None = None,
    result: Mapping[str, Scalar] | None = None,
    secrets: Secrets = NO_SECRETS,
) -> dict[str, Any]:
    """The answer to one command on `.../cmd/response`, matched by request_id.

    `error.reason` is the daemon's machine-readable refusal (e.g. "no_encounter") when it
    gave one; it must look like a snake_case identifier or it is left out."""
    error = None
    if not ok:
        reason = error_reason if error_reason and _DETAIL_KEY.match(error_reason) else None
        error = {
            "code": error_code or "failed",
            "message": scrub_text(error_message or "", secrets),
            "reason": reason,
        }
    return {
        "v": SCHEMA_VERSION,
        "device_id": device_id,
        "request_id": request_id,
        "command": command,
        "ok": ok,
        "state": state,
        "error": error,
        "result": dict(result or {}),
        "at": iso(at),
    }


def encode(payload: Mapping[str, Any]) -> bytes:
    """Compact UTF-8 JSON; NaN/inf are rejected (the builders never produce them)."""
    return json.dumps(payload, separators=(",", ":"), allow_nan=False, ensure_ascii=False).encode()


def now() -> datetime:
    return datetime.now(UTC)
