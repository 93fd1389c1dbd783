"""The dashboard's model of the fleet: one record per device, folded from checked messages (pure).

Single-threaded: the asyncio loop owns it and ingest feeds it `validate` results. Presence
follows the stale-will rule of `fleet watch` by using the same code,
`edge_recorder.fleet.presence_rule` (the highest birth_seq seen online wins, an older
session's late will is ignored, an `online` after an `offline` wins whatever the numbers; a
test replays random sequences through both views). Unlike
`fleet watch`, staleness is judged by the device's own `at` against its `interval_s`, never by
when the broker delivered the message, so a retained status of a device that died hours ago is
stale the moment the dashboard starts.

`apply` is cheap (no sorting, no scanning): status problems are computed once per status and
the time-dependent ones (stale, bad input in the last hour) when a summary is asked for;
`summaries` sorts on demand. Memory per device is bounded: 200 events, 50 birth records, 61
per-minute counters of refused messages, whatever a device floods.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from edge_recorder.dashboard.problems import (
    STALE_FACTOR,
    BadWindow,
    Problem,
    Trend,
    bad_input_problem,
    offline_problem,
    rank,
    stale_problem,
    status_problems,
)
from edge_recorder.dashboard.validate import BAD_KINDS, BadKind, Invalid, Valid, parse_at
from edge_recorder.fleet.presence_rule import Presence, PresenceRule

UnattributedKind = BadKind | Literal["too_many_devices"]
MAX_EVENTS = 200
MAX_BIRTHS = 50

SUMMARY_KEYS = (
    "device_id", "location", "presence", "offline_reason", "state", "rank", "problems", "at",
    "age_s", "interval_s", "birth_seq", "encounter_ref", "recording_seq", "encounter_elapsed_s",
    "uplink_service", "uplink_online", "backlog_recordings", "backlog_bytes", "oldest_age_s",
    "mic_present", "mic_level_dbfs", "mic_peak_dbfs", "disk_free_bytes", "disk_total_bytes",
    "cpu_temp_c", "version", "bad_input_total", "last_event_at",
)  # fmt: skip
COUNT_KEYS = ("total", "online", "offline", "stale", "unknown", "problem", "recording", "idle",
              "paused")  # fmt: skip


def _part(body: dict[str, object] | None, key: str) -> dict[str, object]:
    value = (body or {}).get(key)
    return value if isinstance(value, dict) else {}


@dataclass(slots=True)
class DeviceRecord:
    """Everything the dashboard knows about one device."""

    device_id: str
    birth: PresenceRule = field(default_factory=PresenceRule)
    availability: dict[str, object] | None = None
    status: dict[str, object] | None = None
    status_at: float | None = None  # the device's own `at`, epoch seconds
    interval_s: float | None = None
    status_problems: list[Problem] = field(default_factory=list)
    trend: Trend = field(default_factory=Trend)
    events: deque[tuple[float, dict[str, object]]] = field(
        default_factory=lambda: deque(maxlen=MAX_EVENTS)
    )
    event_keys: set[tuple[object, object]] = field(default_factory=set)
    last_event_at: float | None = None
    last_event_iso: str | None = None
    births: deque[dict[str, object]] = field(default_factory=lambda: deque(maxlen=MAX_BIRTHS))
    bad: dict[str, int] = field(default_factory=lambda: dict.fromkeys(BAD_KINDS, 0))
    bad_total: int = 0
    bad_window: BadWindow = field(default_factory=BadWindow)
    bad_last: dict[str, object] | None = None

    def presence(self, now: float) -> Presence:
        """online/offline by birth order; 'stale' when online but its status is too old."""
        state = self.birth.state()
        if state == "online" and self.is_stale(now):
            return "stale"
        return state

    def is_stale(self, now: float) -> bool:
        if self.status_at is None or self.interval_s is None:
            return False
        return now - self.status_at > STALE_FACTOR * self.interval_s

    def has_problems(self, now: float, presence: Presence) -> bool:
        """`bool(problems(...))` without building them (counts run 4 times a second)."""
        if presence in ("offline", "stale") or self.status_problems:
            return True
        return bool(self.bad_total) and self.bad_window.count(now) > 0

    def problems(self, now: float, presence: Presence) -> list[Problem]:
        """Current problems in rank order."""
        found: list[Problem] = []
        if presence == "offline":
            found.append(offline_problem(self.birth.offline_reason))
        else:
            found.extend(self.status_problems)
        if presence == "stale" and self.status_at is not None and self.interval_s is not None:
            found.append(stale_problem(now - self.status_at, self.interval_s))
        refused = self.bad_window.count(now) if self.bad_total else 0
        if refused:
            last_kind = self.bad_last.get("kind") if self.bad_last else None
            found.append(bad_input_problem(refused, str(last_kind) if last_kind else None))
        return found

    # -- folding messages in (presence by edge_recorder.fleet.presence_rule)

    def apply_availability(self, item: Valid, received_at: float) -> None:
        body = item.body
        if body is None:
            self.birth.plain = item.plain
            self.births.append(
                {"received_at": received_at, "at": None, "state": item.plain,
                 "birth_seq": None, "reason": None, "verdict": "plain"}
            )  # fmt: skip
            return
        state, seq = body.get("state"), body.get("birth_seq")
        self.availability = body
        stale = not self.birth.availability(str(state), seq, body.get("reason"))
        self.births.append(
            {"received_at": received_at, "at": body.get("at"), "state": state, "birth_seq": seq,
             "reason": body.get("reason"), "verdict": "stale_will" if stale else "accepted"}
        )  # fmt: skip

    def apply_status(self, body: dict[str, object]) -> None:
        self.birth.status(body.get("birth_seq"))
        at = parse_at(str(body.get("at")))
        interval = body.get("interval_s")
        self.status, self.status_at = body, at
        self.interval_s = float(interval) if isinstance(interval, int | float) else None
        self.trend.update(at, body)
        self.status_problems = status_problems(body, self.trend)

    def apply_event(self, body: dict[str, object]) -> bool:
        key = (body.get("instance"), body.get("seq"))
        if key in self.event_keys:
            return False  # QoS 1 delivered it twice
        if len(self.events) == self.events.maxlen:
            old = self.events[0][1]
            self.event_keys.discard((old.get("instance"), old.get("seq")))
        at = parse_at(str(body.get("at")))
        self.events.append((at, body))
        self.event_keys.add(key)
        if self.last_event_at is None or at >= self.last_event_at:
            self.last_event_at = at
            self.last_event_iso = str(body.get("at"))
        return True

    def apply_bad(self, item: Invalid, received_at: float, count: int = 1) -> None:
        self.bad[item.kind] += count
        self.bad_total += count
        self.bad_window.add(received_at, count)
        self.bad_last = {"kind": item.kind, "reason": item.reason, "at": received_at}


class FleetState:
    """Every device the dashboard has heard of, and messages it could not attribute."""

    def __init__(
        self, prefix: str, *, max_devices: int = 5000, clock: Callable[[], float] = time.time
    ) -> None:
        self.prefix = prefix
        self.max_devices = max_devices
        self.clock = clock
        self._devices: dict[str, DeviceRecord] = {}
        self.unattributed: dict[str, int] = dict.fromkeys((*BAD_KINDS, "too_many_devices"), 0)

    def _record(self, device_id: str) -> DeviceRecord | None:
        record = self._devices.get(device_id)
        if record is None and len(self._devices) < self.max_devices:
            record = self._devices[device_id] = DeviceRecord(device_id)
        return record

    def apply(self, item: Valid | Invalid, received_at: float, count: int = 1) -> str | None:
        """Fold one checked message in (an Invalid may stand for `count` alike, a flood's);
        returns the device id whose summary changed, or None."""
        if item.device_id is None:
            assert isinstance(item, Invalid)
            self.note_unattributed(item.kind, count)
            return None
        if isinstance(item, Valid) and item.leaf == "response":
            return None  # command answers belong to commands.py, not to the fleet model
        record = self._record(item.device_id)
        if record is None:
            kind: UnattributedKind = item.kind if isinstance(item, Invalid) else "too_many_devices"
            self.note_unattributed(kind, count)
            return None
        if isinstance(item, Invalid):
            record.apply_bad(item, received_at, count)
        elif item.leaf == "availability":
            record.apply_availability(item, received_at)
        elif item.body is None:
            return None
        elif item.leaf == "status":
            record.apply_status(item.body)
        elif not record.apply_event(item.body):
            return None
        return item.device_id

    def note_unattributed(self, kind: UnattributedKind, count: int = 1) -> None:
        """Count messages no device can carry: bad topic id, or beyond max_devices."""
        self.unattributed[kind] = self.unattributed.get(kind, 0) + count

    def device_ids(self) -> list[str]:
        return sorted(self._devices)

    def record(self, device_id: str) -> DeviceRecord | None:
        """The raw record (read-only use: metrics, tests)."""
        return self._devices.get(device_id)

    def summary(self, device_id: str, now: float) -> dict[str, object]:
        """The DeviceSummary of one known device (KeyError for an unknown one)."""
        return self._summary(self._devices[device_id], now)

    def _summary(self, rec: DeviceRecord, now: float) -> dict[str, object]:
        presence = rec.presence(now)
        problems = rec.problems(now, presence)
        status = rec.status or {}
        backlog, mic = _part(status, "backlog"), _part(status, "mic")
        system = _part(status, "system")
        state = status.get("state")
        return {
            "device_id": rec.device_id,
            "location": status.get("location"),
            "presence": presence,
            "offline_reason": rec.birth.offline_reason if presence == "offline" else None,
            "state": state,
            "rank": rank(problems, state if isinstance(state, str) else None),
            "problems": [p.as_json() for p in problems],
            "at": status.get("at"),
            "age_s": None if rec.status_at is None else round(now - rec.status_at, 3),
            "interval_s": rec.interval_s,
            "birth_seq": rec.birth.birth_seq,
            "encounter_ref": status.get("encounter_ref"),
            "recording_seq": status.get("recording_seq"),
            "encounter_elapsed_s": status.get("encounter_elapsed_s"),
            "uplink_service": status.get("uplink_service"),
            "uplink_online": status.get("uplink_online"),
            "backlog_recordings": backlog.get("recordings"),
            "backlog_bytes": backlog.get("bytes"),
            "oldest_age_s": backlog.get("oldest_age_s"),
            "mic_present": mic.get("present"),
            "mic_level_dbfs": mic.get("level_dbfs"),
            "mic_peak_dbfs": mic.get("peak_dbfs"),
            "disk_free_bytes": system.get("disk_free_bytes"),
            "disk_total_bytes": system.get("disk_total_bytes"),
            "cpu_temp_c": system.get("cpu_temp_c"),
            "version": system.get("version"),
            "bad_input_total": rec.bad_total,
            "last_event_at": rec.last_event_iso,
        }

    def summaries(self, now: float) -> list[dict[str, object]]:
        """Every device, worst first: sorted by (rank, device_id)."""
        out = [self._summary(rec, now) for rec in self._devices.values()]
        out.sort(key=lambda s: (s["rank"], s["device_id"]))
        return out

    def counts(self, now: float) -> dict[str, int]:
        """Devices by presence, with any problem, and by state among online devices."""
        counts = dict.fromkeys(COUNT_KEYS, 0)
        counts["total"] = len(self._devices)
        for rec in self._devices.values():
            presence = rec.presence(now)
            counts[presence] += 1
            if rec.has_problems(now, presence):
                counts["problem"] += 1
            if presence == "online":
                state = (rec.status or {}).get("state")
                if state in ("recording", "idle"):
                    counts[str(state)] += 1
                elif state in ("paused", "stopping"):
                    counts["paused"] += 1
        return counts

    def detail(self, device_id: str, now: float) -> dict[str, object] | None:
        """The DeviceDetail of one device; None when unknown."""
        rec = self._devices.get(device_id)
        if rec is None:
            return None
        newest_first = sorted(reversed(rec.events), key=lambda e: e[0], reverse=True)
        return {
            "summary": self._summary(rec, now),
            "status": rec.status,
            "availability": rec.availability,
            "events": [body for _, body in newest_first],
            "births": list(reversed(rec.births)),
            "bad_input": dict(rec.bad),
            "bad_input_last": rec.bad_last,
        }
