"""Realistic device payloads for the dashboard's unit tests (valid against the fleet schemas)."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from typing import Any

PREFIX = "edge-recorder"
T0 = datetime(2026, 11, 21, 8, 0, tzinfo=UTC).timestamp()

_THROTTLED = {
    "raw": 0,
    "under_voltage": False,
    "freq_capped": False,
    "throttled": False,
    "soft_temp_limit": False,
    "under_voltage_occurred": False,
    "freq_capped_occurred": False,
    "throttled_occurred": False,
    "soft_temp_limit_occurred": False,
}


def iso(epoch: float) -> str:
    """Epoch -> the devices' `2026-11-21T08:00:30.000Z`."""
    moment = datetime.fromtimestamp(epoch, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def topic(device_id: str, leaf: str) -> str:
    return f"{PREFIX}/{device_id}/{leaf}"


def encode(body: dict[str, Any]) -> bytes:
    return json.dumps(body, separators=(",", ":")).encode()


def availability(
    state: str = "online", birth_seq: int = 1, reason: str | None = None, at: float = T0
) -> dict[str, Any]:
    why = reason or ("connected" if state == "online" else "lost")
    return {"v": 1, "state": state, "birth_seq": birth_seq, "reason": why, "at": iso(at)}


def status(
    device_id: str,
    *,
    at: float = T0,
    birth_seq: int = 1,
    interval_s: float = 30.0,
    state: str = "idle",
    backlog: dict[str, Any] | None = None,
    mic: dict[str, Any] | None = None,
    system: dict[str, Any] | None = None,
    throttled: dict[str, Any] | None = None,
    **fields: Any,
) -> dict[str, Any]:
    """A healthy idle device unless told otherwise; nested parts are merged key by key."""
    body: dict[str, Any] = {
        "v": 1,
        "device_id": device_id,
        "location": f"Clinic B {device_id}",
        "at": iso(at),
        "birth_seq": birth_seq,
        "interval_s": interval_s,
        "state": state,
        "error_reason": None,
        "encounter_ref": "3f9a0c1b2d4e" if state in ("recording", "paused") else None,
        "recording_seq": 2 if state in ("recording", "paused") else None,
        "encounter_elapsed_s": 312.4 if state in ("recording", "paused") else None,
        "alarms": [],
        "warnings": [],
        "uplink_online": True,
        "uplink_service": "aas",
        "last_delivery_at": iso(T0 - 120),
        "error": None,
        "last_error": None,
        "backlog": {"recordings": 0, "bytes": 0, "oldest_age_s": None, "quarantined": 0},
        "mic": {
            "present": True,
            "device": "plughw:CARD=ArrayUAC10",
            "level_dbfs": -38.2,
            "peak_dbfs": -12.5,
            "clipped_samples": 0,
            "xruns": 0,
            "digital_silence": False,
            "last_error": None,
        },
        "system": {
            "disk_free_bytes": 24_117_248_000,
            "disk_total_bytes": 31_268_536_320,
            "cpu_temp_c": 51.6,
            "throttled": copy.deepcopy(_THROTTLED),
            "uptime_s": 86400.0,
            "process_uptime_s": 3600.0,
            "version": "0.1.0",
            "os": "Debian GNU/Linux 12 (bookworm)",
            "kernel": "6.6.51+rpt-rpi-v8",
            "model": "Raspberry Pi 4 Model B Rev 1.5",
            "ip": "10.20.30.40",
            "hostname": device_id,
        },
        "mqtt": {
            "protocol": "5",
            "events_dropped": 0,
            "events_queued": 0,
            "commands_rejected": 0,
            "commands_limited": 0,
            "commands_ignored": 0,
            "replies_dropped": 0,
        },
    }
    body["backlog"].update(backlog or {})
    body["mic"].update(mic or {})
    body["system"].update(system or {})
    if throttled is not None:
        body["system"]["throttled"].update(throttled)
    body.update(fields)
    return body


def event(
    device_id: str,
    seq: int,
    *,
    at: float = T0,
    instance: str = "5be0c2a1",
    kind: str = "encounter_delivered",
    severity: str = "info",
) -> dict[str, Any]:
    return {
        "v": 1,
        "device_id": device_id,
        "instance": instance,
        "birth_seq": 1,
        "seq": seq,
        "type": kind,
        "severity": severity,
        "at": iso(at),
        "encounter_ref": "3f9a0c1b2d4e",
        "code": None,
        "message": None,
        "details": {"recordings": 2, "bytes": 4_915_200},
    }


def response(device_id: str, request_id: str = "dash-7f3a", ok: bool = True) -> dict[str, Any]:
    error = None if ok else {"code": "rejected", "message": "nothing to do", "reason": "idle"}
    return {
        "v": 1,
        "device_id": device_id,
        "request_id": request_id,
        "command": "identify",
        "ok": ok,
        "state": "idle",
        "error": error,
        "result": {},
        "at": iso(T0),
    }
