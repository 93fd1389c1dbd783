"""The dashboard as the tests run it, and the device payloads they feed it.

`DashboardThread` runs the real server (`edge_recorder.dashboard.serve.serve`) in its own
thread and event loop, so a synchronous test (Playwright's sync API) or an asyncio one (which
must not share its loop with the server) can drive it over real HTTP. The payload builders
start from the fleet schemas' own examples, are checked against the schemas (a test payload
the dashboard would drop as bad input fails at once, where it was built), and differ only
where a test says so. Used by tests/integration/dashboard, tests/browser and the daemon's
end-to-end dashboard test.
"""

from __future__ import annotations

import asyncio
import copy
import json
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import jsonschema

from edge_recorder.dashboard.config import DashboardConfig
from edge_recorder.dashboard.serve import serve
from edge_recorder.fleet import SCHEMA_DIR
from edge_recorder.fleet.payloads import iso

PREFIX = "edge-recorder"

# The DeviceSummary contract (docs/dashboard.md), spelled out independently of the code's list.
SUMMARY_KEYS = frozenset({
    "device_id", "location", "presence", "offline_reason", "state", "rank", "problems", "at",
    "age_s", "interval_s", "birth_seq", "encounter_ref", "recording_seq", "encounter_elapsed_s",
    "uplink_service", "uplink_online", "backlog_recordings", "backlog_bytes", "oldest_age_s",
    "mic_present", "mic_level_dbfs", "mic_peak_dbfs", "disk_free_bytes", "disk_total_bytes",
    "cpu_temp_c", "version", "bad_input_total", "last_event_at",
})  # fmt: skip


def _schema(name: str) -> dict[str, Any]:
    schema: dict[str, Any] = json.loads((SCHEMA_DIR / f"{name}.schema.json").read_text())
    return schema


SCHEMAS = {name: _schema(name) for name in ("status", "availability", "event", "command-response")}


# ---------------------------------------------------------------- payloads


def iso_now(offset_s: float = 0.0) -> str:
    """Now (plus `offset_s`) as the devices spell a timestamp: `2026-11-21T08:00:30.000Z`."""
    stamp = iso(datetime.now(UTC) + timedelta(seconds=offset_s))
    assert stamp is not None
    return stamp


def example(name: str) -> dict[str, Any]:
    """A fresh copy of the schema's first example."""
    return copy.deepcopy(SCHEMAS[name]["examples"][0])


def checked(name: str, body: dict[str, Any]) -> dict[str, Any]:
    """Fail fast on a test payload the dashboard would drop as bad input."""
    jsonschema.validate(body, SCHEMAS[name])
    return body


def status(device_id: str, location: str | None = None, **changes: Any) -> dict[str, Any]:
    """A valid idle status, `at` now, at "Room of <device_id>" unless `location` is given.

    A dict value merges into the nested part (`backlog={"bytes": 5}`); a dotted key sets one
    leaf (`**{"backlog.bytes": 5}`); anything else replaces the field.
    """
    body = example("status")
    body.update(device_id=device_id, location=location or f"Room of {device_id}", at=iso_now())
    body.update(state="idle", encounter_ref=None, recording_seq=None, encounter_elapsed_s=None)
    body["backlog"] = {"recordings": 0, "bytes": 0, "oldest_age_s": None, "quarantined": 0}
    body["system"]["hostname"] = device_id
    for key, value in changes.items():
        target = body
        *parents, leaf = key.split(".")
        for parent in parents:
            target = target[parent]
        if isinstance(value, dict) and isinstance(target.get(leaf), dict):
            target[leaf] = {**target[leaf], **value}
        else:
            target[leaf] = value
    return checked("status", body)


def availability(
    state: str = "online", birth_seq: int = 42, reason: str | None = None
) -> dict[str, Any]:
    """A JSON availability, `at` now; the reason defaults to `connected` / `lost`."""
    why = reason or ("connected" if state == "online" else "lost")
    body = {"v": 1, "state": state, "birth_seq": birth_seq, "reason": why, "at": iso_now()}
    return checked("availability", body)


def event(
    device_id: str,
    seq: int,
    kind: str = "encounter_delivered",
    severity: str = "info",
    **changes: Any,
) -> dict[str, Any]:
    """The schema's example event as `device_id`'s number `seq`, `at` now."""
    body = example("event")
    body.update(device_id=device_id, seq=seq, type=kind, severity=severity, at=iso_now())
    body.update(changes)
    return checked("event", body)


def response(device_id: str, request_id: str, command: str, **changes: Any) -> dict[str, Any]:
    """A device's successful answer to `command` (change `ok`, `error`, ... as needed)."""
    body = {
        "v": 1,
        "device_id": device_id,
        "request_id": request_id,
        "command": command,
        "ok": True,
        "state": "idle",
        "error": None,
        "result": {},
        "at": iso_now(),
    }
    body.update(changes)
    return checked("command-response", body)


# ---------------------------------------------------------------- the server


class DashboardThread:
    """The real dashboard, `serve(cfg)`, in a thread with its own event loop.

    `start` returns once it listens (`url` is set) or fails the test; `stop` asks it to stop as
    SIGTERM would, waits for the thread and returns serve()'s exit code.
    """

    def __init__(self, cfg: DashboardConfig) -> None:
        self.cfg = cfg
        self.url = ""
        self.exit_code: int | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, timeout: float = 20.0) -> DashboardThread:
        self._thread = threading.Thread(
            target=asyncio.run, args=(self._main(),), name="dashboard", daemon=True
        )
        self._thread.start()
        if not self._ready.wait(timeout) or not self.url:
            raise AssertionError(f"dashboard did not start (exit code {self.exit_code})")
        return self

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()

        def ready(url: str) -> None:
            self.url = url.rstrip("/")
            self._ready.set()

        try:
            self.exit_code = await serve(self.cfg, ready=ready, stop=self._stop)
        finally:
            self._ready.set()

    def stop(self, timeout: float = 20.0) -> int | None:
        if self._thread is None or not self._thread.is_alive():
            return self.exit_code
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise AssertionError("dashboard did not stop")
        return self.exit_code
