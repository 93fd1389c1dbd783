"""The operator's view of the fleet, built from retained availability and status (pure).

`FleetView.apply` takes messages in any order; presence follows birth sequence numbers, so a
late Last Will from an older session cannot mark a live device offline. An `online` that
arrives after an `offline` wins whatever their numbers: a device overrules a forged `offline`
(even one claiming a higher birth_seq) by publishing its own `online` again, and a device
whose birth counter was reset (re-imaged) starts again from 1. `render` draws the
terminal table, `snapshot` gives the same rows as JSON for scripts.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any, Literal

from edge_recorder.fleet.topics import split_device_topic

Presence = Literal["online", "offline", "stale", "unknown"]
STALE_FACTOR = 3.0  # a device silent for 3 status intervals is "stale"
DISK_LOW_BYTES = 1024**3
BACKLOG_OLD_S = 3600.0
HOT_C = 80.0


@dataclass
class DeviceRow:
    device_id: str
    online_seq: int = 0
    offline_seq: int = 0
    offline_reason: str | None = None
    plain_presence: str | None = None  # from a publisher that sends bare online/offline
    announced: str | None = None  # what the latest availability (or newer status) says
    status: dict[str, Any] | None = None
    status_at: float | None = None
    last_seen: float | None = None
    last_event: dict[str, Any] | None = None


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
            row.plain_presence = text
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
            row.status, row.status_at = body, at
            seq = body.get("birth_seq")
            self._seq(row, "online", seq)
            if row.announced != "offline" or (isinstance(seq, int) and seq > row.offline_seq):
                row.announced = "online"  # a status of a session newer than the death proves life
        else:
            row.last_event = body
        row.last_seen = at if row.last_seen is None else max(row.last_seen, at)
        return device_id

    @staticmethod
    def _seq(row: DeviceRow, state: str, value: Any) -> None:
        if not isinstance(value, int):
            return
        if state == "online":
            row.online_seq = max(row.online_seq, value)
        else:
            row.offline_seq = max(row.offline_seq, value)

    def _availability(self, row: DeviceRow, body: dict[str, Any]) -> None:
        state = body.get("state")
        if state not in ("online", "offline"):
            self.ignored += 1
            return
        row.plain_presence = None
        seq = body.get("birth_seq")
        stale = state == "offline" and isinstance(seq, int) and seq < row.online_seq
        self._seq(row, state, seq)
        if not stale:  # an offline older than the newest online is a late will: ignored
            row.announced = state
            if state == "offline":
                row.offline_reason = body.get("reason")

    def rows(self) -> list[DeviceRow]:
        return [self.devices[k] for k in sorted(self.devices)]


def presence(row: DeviceRow, now: float) -> Presence:
    """online/offline by birth order; 'stale' when an online device stopped reporting."""
    if row.plain_presence is not None:
        state: Presence = "online" if row.plain_presence == "online" else "offline"
    elif row.announced is None:
        state = "unknown"
    else:
        state = "online" if row.announced == "online" else "offline"
    if state == "online" and row.status is not None and row.status_at is not None:
        interval = row.status.get("interval_s")
        if isinstance(interval, int | float) and now - row.status_at > STALE_FACTOR * interval:
            return "stale"
    return state


def alerts(row: DeviceRow) -> list[str]:
    """Why an operator should look at this device (empty: nothing to see)."""
    status = row.status or {}
    found: list[str] = [str(a) for a in status.get("alarms") or []]
    if status.get("state") == "error":
        found.append("error")
    mic = status.get("mic") or {}
    if status and not mic.get("present", True):
        found.append("mic_missing")
    if mic.get("digital_silence"):
        found.append("mic_silent")
    backlog = status.get("backlog") or {}
    if (backlog.get("oldest_age_s") or 0) > BACKLOG_OLD_S:
        found.append("backlog_old")
    system = status.get("system") or {}
    free = system.get("disk_free_bytes")
    if isinstance(free, int) and free < DISK_LOW_BYTES:
        found.append("disk_low")
    throttled = system.get("throttled") or {}
    if any(throttled.get(k) for k in ("under_voltage", "throttled", "freq_capped")):
        found.append("throttled")
    temp = system.get("cpu_temp_c")
    if isinstance(temp, int | float) and temp >= HOT_C:
        found.append("hot")
    mqtt = status.get("mqtt") or {}
    for lost in ("events_dropped", "commands_limited", "replies_dropped"):
        if (mqtt.get(lost) or 0) > 0:  # since the daemon started; a restart clears it
            found.append(lost)
    return list(dict.fromkeys(found))


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


def snapshot(view: FleetView, now: float) -> list[dict[str, Any]]:
    """One JSON-friendly record per device (what `fleet watch --once --json` prints)."""
    out = []
    for row in view.rows():
        status = row.status or {}
        backlog = status.get("backlog") or {}
        mic = status.get("mic") or {}
        out.append(
            {
                "device_id": row.device_id,
                "presence": presence(row, now),
                "offline_reason": row.offline_reason,
                "birth_seq": max(row.online_seq, row.offline_seq) or None,
                "state": status.get("state"),
                "last_seen_s": None if row.last_seen is None else round(now - row.last_seen, 1),
                "backlog_recordings": backlog.get("recordings"),
                "backlog_bytes": backlog.get("bytes"),
                "mic_present": mic.get("present"),
                "mic_level_dbfs": mic.get("level_dbfs"),
                "version": (status.get("system") or {}).get("version"),
                "alerts": alerts(row),
            }
        )
    return out


COLUMNS = ("DEVICE", "PRESENCE", "STATE", "SEEN", "BACKLOG", "MIC", "VERSION", "ALERTS")
_RED, _YELLOW, _GREEN, _DIM, _RESET = "\x1b[31m", "\x1b[33m", "\x1b[32m", "\x1b[2m", "\x1b[0m"


def render(view: FleetView, now: float, color: bool = False) -> str:
    """The table, one line per device; offline in red, alerting in yellow."""
    lines: list[tuple[list[str], str]] = []
    for record in snapshot(view, now):
        mic = "-"
        if record["mic_present"] is False:
            mic = "MISSING"
        elif isinstance(record["mic_level_dbfs"], int | float):
            mic = f"{record['mic_level_dbfs']:.0f} dBFS"
        backlog = "-"
        if record["backlog_recordings"] is not None:
            backlog = f"{record['backlog_recordings']} rec / {size(record['backlog_bytes'])}"
        presence_text = record["presence"]
        if presence_text == "offline" and record["offline_reason"]:
            presence_text += f" ({record['offline_reason']})"
        cells = [
            record["device_id"],
            presence_text,
            record["state"] or "-",
            age(record["last_seen_s"]),
            backlog,
            mic,
            record["version"] or "-",
            ", ".join(record["alerts"]) or "-",
        ]
        tone = ""
        if record["presence"] in ("offline", "stale"):
            tone = _RED
        elif record["alerts"]:
            tone = _YELLOW
        elif record["presence"] == "online":
            tone = _GREEN
        lines.append((cells, tone))
    widths = [len(c) for c in COLUMNS]
    for cells, _ in lines:
        widths = [max(w, len(c)) for w, c in zip(widths, cells, strict=True)]

    def fmt(cells: list[str]) -> str:
        return "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()

    out = [fmt(list(COLUMNS))]
    for cells, tone in lines:
        text = fmt(cells)
        out.append(f"{tone}{text}{_RESET}" if color and tone else text)
    online = sum(1 for r in view.rows() if presence(r, now) == "online")
    alerting = sum(1 for r in view.rows() if alerts(r))
    footer = f"{len(view.devices)} devices, {online} online, {alerting} alerting"
    out.append(f"{_DIM}{footer}{_RESET}" if color else footer)
    return "\n".join(out)
