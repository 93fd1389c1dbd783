"""The operator's view of the fleet, built from retained availability and status (pure).

`FleetView.apply` takes messages in any order; presence follows birth sequence numbers by the
rule in `presence_rule` (shared with the web dashboard), so a late Last Will from an older
session cannot mark a live device offline, and a device overrules a forged `offline` by
publishing its own `online` again.

Ages and staleness come from the device's own `at` timestamps, never from when the watcher
received a message: a retained status delivered now may be hours old. Devices are ranked
problems first in the same order as the web dashboard (offline, error, alarm, backlog, mic,
clipping, disk, throttled/hot, stale, lost messages; then recording, paused, idle, unknown).
`watch_screen.render` draws the terminal screen, `snapshot` gives
the same records as JSON for scripts.
"""

from __future__ import annotations

import itertools
import json
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from edge_recorder.fleet.presence_rule import Presence, PresenceRule
from edge_recorder.fleet.topics import split_device_topic

STALE_FACTOR = 3.0  # a device whose own `at` is older than 3 status intervals is "stale"
DISK_LOW_BYTES = 1024**3
DISK_LOW_FRACTION = 0.10
BACKLOG_OLD_S = 3600.0
BACKLOG_GROWING_AGE_S = 900.0
BACKLOG_GROWTH_STEPS = 3  # bytes grew in each of the last 3 statuses
CLIP_PEAK_DBFS = -0.5
HOT_C = 80.0

# Rank of a problem (lower is worse), as the dashboard's problems.RANK; then healthy devices by
# state. Every alert name maps to one of these.
RANK_OFFLINE, RANK_ERROR, RANK_ALARM, RANK_BACKLOG, RANK_MIC = 0, 1, 2, 3, 4
RANK_CLIPPING, RANK_DISK, RANK_THROTTLED, RANK_STALE, RANK_LOST = 5, 6, 7, 8, 9
STATE_RANK = {"recording": 10, "paused": 11, "stopping": 11, "idle": 12}
RANK_UNKNOWN = 13
ARRAY_WARNINGS = ("array_mic_fault", "array_calibration_fallback")  # status warnings shown
FIRST_HEALTHY_RANK = 10


@dataclass
class DeviceRow:
    device_id: str
    birth: PresenceRule = field(default_factory=PresenceRule)
    status: dict[str, Any] | None = None
    status_at: float | None = None  # when the watcher received the status (not shown)
    last_seen: float | None = None  # when the watcher last received anything
    last_event: dict[str, Any] | None = None
    device_at: float | None = None  # newest `at` of the device's own status / availability
    device_at_iso: str | None = None
    backlog_bytes: list[int] = field(default_factory=list)  # last few statuses, oldest first
    clipping_grew: bool = False


def parse_at(value: Any) -> float | None:
    """A payload's ISO `at` ("2026-11-21T08:00:00.000Z") as epoch seconds; None if unusable."""
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment.timestamp() if moment.tzinfo is not None else None


@dataclass
class FleetView:
    prefix: str
    devices: dict[str, DeviceRow] = field(default_factory=dict)
    ignored: int = 0

    def apply(self, topic: str, payload: bytes, received_at: float | None = None) -> str | None:
        """Fold one message in; returns the device id it concerned (None: ignored)."""
        parts = split_device_topic(self.prefix, topic)
        if parts is None or parts[1] not in ("availability", "status", "events"):
            return None
        device_id, leaf = parts
        at = time.time() if received_at is None else received_at
        if not payload:  # a retained message being cleared
            return None
        row = self.devices.setdefault(device_id, DeviceRow(device_id))
        text = payload.decode("utf-8", errors="replace").strip()
        if leaf == "availability" and text in ("online", "offline"):
            row.birth.plain = text
            row.last_seen = at if row.last_seen is None else max(row.last_seen, at)
            return device_id
        try:
            body = json.loads(text)
        except json.JSONDecodeError:
            self.ignored += 1
            return None
        if not isinstance(body, dict):
            self.ignored += 1
            return None
        if leaf == "availability":
            self._availability(row, body)
        elif leaf == "status":
            self._trends(row, body)
            row.status, row.status_at = body, at
            row.birth.status(body.get("birth_seq"))
        else:
            row.last_event = body
        if leaf != "events":
            self._device_time(row, body.get("at"))
        row.last_seen = at if row.last_seen is None else max(row.last_seen, at)
        return device_id

    @staticmethod
    def _device_time(row: DeviceRow, value: Any) -> None:
        moment = parse_at(value)
        if moment is not None and (row.device_at is None or moment > row.device_at):
            row.device_at, row.device_at_iso = moment, str(value)

    @staticmethod
    def _trends(row: DeviceRow, body: dict[str, Any]) -> None:
        """Remember what "growing" needs: backlog bytes and the clipped-sample counter."""
        backlog = body.get("backlog")
        amount = backlog.get("bytes") if isinstance(backlog, dict) else None
        if isinstance(amount, int):
            row.backlog_bytes = [*row.backlog_bytes, amount][-(BACKLOG_GROWTH_STEPS + 1) :]
        before = _mic(row.status).get("clipped_samples")
        now = _mic(body).get("clipped_samples")
        row.clipping_grew = isinstance(before, int) and isinstance(now, int) and now > before

    def _availability(self, row: DeviceRow, body: dict[str, Any]) -> None:
        state = body.get("state")
        if state not in ("online", "offline"):
            self.ignored += 1
            return
        row.birth.availability(state, body.get("birth_seq"), body.get("reason"))

    def rows(self) -> list[DeviceRow]:
        """Every device, by name."""
        return [self.devices[k] for k in sorted(self.devices)]


def _mic(status: dict[str, Any] | None) -> dict[str, Any]:
    mic = (status or {}).get("mic")
    return mic if isinstance(mic, dict) else {}


def _part(status: dict[str, Any], key: str) -> dict[str, Any]:
    value = status.get(key)
    return value if isinstance(value, dict) else {}


def device_age(row: DeviceRow, now: float) -> float | None:
    """Seconds since the device's own newest `at` (never negative; None: no timestamp)."""
    return None if row.device_at is None else max(0.0, now - row.device_at)


def presence(row: DeviceRow, now: float) -> Presence:
    """online/offline by birth order; 'stale' when an online device's own `at` is too old.

    A status without a usable `at` (not from edge-recorder) falls back to its receive time.
    """
    state = row.birth.state()
    if state == "online" and row.status is not None:
        interval = row.status.get("interval_s")
        seen = row.device_at if row.device_at is not None else row.status_at
        if (
            isinstance(interval, int | float)
            and seen is not None
            and now - seen > STALE_FACTOR * interval
        ):
            return "stale"
    return state


def _backlog_growing(row: DeviceRow, backlog: dict[str, Any]) -> bool:
    if not (backlog.get("recordings") or 0) > 0:
        return False
    if (backlog.get("oldest_age_s") or 0) > BACKLOG_GROWING_AGE_S:
        return True
    trend = row.backlog_bytes
    return len(trend) > BACKLOG_GROWTH_STEPS and all(b > a for a, b in itertools.pairwise(trend))


def _disk_low(system: dict[str, Any]) -> bool:
    free, total = system.get("disk_free_bytes"), system.get("disk_total_bytes")
    if not isinstance(free, int):
        return False
    return free < DISK_LOW_BYTES or (
        isinstance(total, int) and total > 0 and free < DISK_LOW_FRACTION * total
    )


def ranked_alerts(row: DeviceRow) -> list[tuple[str, int]]:
    """(alert, rank) for everything an operator should look at, in a stable order."""
    status = row.status or {}
    found: list[tuple[str, int]] = [(str(a), RANK_ALARM) for a in status.get("alarms") or []]
    if status.get("state") == "error":
        found.append(("error", RANK_ERROR))
    if status.get("error"):
        found.append(("delivery_error", RANK_ERROR))
    mic = _mic(status)
    if status and not mic.get("present", True):
        found.append(("mic_missing", RANK_MIC))
    if mic.get("digital_silence"):
        found.append(("mic_silent", RANK_MIC))
    if mic.get("last_error"):
        found.append(("mic_error", RANK_MIC))
    peak = mic.get("peak_dbfs")
    if row.clipping_grew or (isinstance(peak, int | float) and peak >= CLIP_PEAK_DBFS):
        found.append(("mic_clipping", RANK_CLIPPING))
    warnings = status.get("warnings") or []
    for warning in ARRAY_WARNINGS:  # the array's own: a mic left out, a calibration unused
        if warning in warnings:
            found.append((warning, RANK_CLIPPING))
    backlog = _part(status, "backlog")
    if _backlog_growing(row, backlog):
        found.append(("backlog_growing", RANK_BACKLOG))
    if (backlog.get("oldest_age_s") or 0) > BACKLOG_OLD_S:
        found.append(("backlog_old", RANK_BACKLOG))
    system = _part(status, "system")
    if _disk_low(system):
        found.append(("disk_low", RANK_DISK))
    throttled = system.get("throttled") or {}
    if isinstance(throttled, dict) and any(
        throttled.get(k) for k in ("under_voltage", "throttled", "freq_capped")
    ):
        found.append(("throttled", RANK_THROTTLED))
    temp = system.get("cpu_temp_c")
    if isinstance(temp, int | float) and temp >= HOT_C:
        found.append(("hot", RANK_THROTTLED))
    mqtt = _part(status, "mqtt")
    for lost in ("events_dropped", "commands_limited", "replies_dropped"):
        if (mqtt.get(lost) or 0) > 0:  # since the daemon started; a restart clears it
            found.append((lost, RANK_LOST))
    best: dict[str, int] = {}  # an alarm may share a name with a derived alert: keep one
    for name, found_rank in found:
        best[name] = min(found_rank, best.get(name, found_rank))
    return list(best.items())


def alerts(row: DeviceRow) -> list[str]:
    """Why an operator should look at this device (empty: nothing to see)."""
    return [name for name, _ in ranked_alerts(row)]


def rank(row: DeviceRow, now: float) -> int:
    """Sort key: problems first (worst lowest), then recording, paused, idle, unknown."""
    where = presence(row, now)
    if where == "offline":
        return RANK_OFFLINE
    ranks = [r for _, r in ranked_alerts(row)]
    if where == "stale":
        ranks.append(RANK_STALE)
    if ranks:
        return min(ranks)
    state = (row.status or {}).get("state")
    return STATE_RANK.get(state, RANK_UNKNOWN) if isinstance(state, str) else RANK_UNKNOWN


def ordered(view: FleetView, now: float) -> list[DeviceRow]:
    """Devices in screen order: by rank, then by name."""
    return sorted(view.devices.values(), key=lambda row: (rank(row, now), row.device_id))


def age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = max(0.0, seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{int(seconds // size)}{unit}"
    return f"{int(seconds)}s"


def size(value: Any) -> str:
    if not isinstance(value, int):
        return "-"
    amount = float(value)
    for unit in ("B", "kB", "MB", "GB"):
        if amount < 1000 or unit == "GB":
            return f"{amount:.0f} {unit}" if unit == "B" else f"{amount:.1f} {unit}"
        amount /= 1000
    return "-"


def record(row: DeviceRow, now: float) -> dict[str, Any]:
    """One device as a JSON-friendly dict (a `snapshot` entry)."""
    status = row.status or {}
    backlog = _part(status, "backlog")
    mic = _mic(status)
    device_age_s = device_age(row, now)
    return {
        "device_id": row.device_id,
        "presence": presence(row, now),
        "offline_reason": row.birth.offline_reason,
        "birth_seq": row.birth.birth_seq,
        "state": status.get("state"),
        "last_seen_s": None if row.last_seen is None else round(now - row.last_seen, 1),
        "at": row.device_at_iso,
        "age_s": None if device_age_s is None else round(device_age_s, 1),
        "rank": rank(row, now),
        "backlog_recordings": backlog.get("recordings"),
        "backlog_bytes": backlog.get("bytes"),
        "mic_present": mic.get("present"),
        "mic_level_dbfs": mic.get("level_dbfs"),
        "version": _part(status, "system").get("version"),
        "alerts": alerts(row),
    }


def snapshot(view: FleetView, now: float) -> list[dict[str, Any]]:
    """One record per device, by name (what `fleet watch --once --json` prints).

    `last_seen_s` is when the watcher last received anything; `at`/`age_s` are the device's
    own newest timestamp and its age (what SEEN shows); `rank` is the screen order.
    """
    return [record(row, now) for row in view.rows()]
