"""The simulated devices themselves (pure): who they are and what each one publishes.

Everything is derived from `seed`: device kinds, ids, levels, event ids, so a demo, a test
and a benchmark see the same fleet; every payload follows the JSON schemas in
`edge_recorder.fleet.schemas` (the tests check it). `simulate.SimulatedFleet` puts these on a
real broker; `backfill` fills a dashboard history with 24 h of plausible samples.
"""

from __future__ import annotations

import math
import random
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, NamedTuple

from edge_recorder.fleet.payloads import SCHEMA_VERSION, Scalar, iso

if TYPE_CHECKING:
    from edge_recorder.dashboard.history import History

PROBLEM_KINDS: tuple[str, ...] = ("offline", "error", "alarm", "backlog_growing")
PROBLEM_KINDS += ("mic_dead", "disk_low", "throttled", "stale")
GIB = 1 << 30
SERVICES = ("aas", "corti", "dice", "aws-connect-health", "aws-healthscribe")
VERSIONS = ("0.9.2", "0.9.3", "1.0.0")
PLATFORM = {
    "os": "Debian GNU/Linux 12 (bookworm)",
    "kernel": "6.6.51+rpt-rpi-v8",
    "model": "Raspberry Pi 4 Model B Rev 1.5",
}
MQTT_COUNTERS: tuple[str, ...] = ("events_dropped", "events_queued", "commands_rejected")
MQTT_COUNTERS += ("commands_limited", "commands_ignored", "replies_dropped")
FLUSH_EVERY = 50_000  # backfill flushes before History's pending bound (200k) could drop rows


class Message(NamedTuple):
    topic: str
    payload: dict[str, Any]
    retain: bool


@dataclass
class SimDevice:
    """One simulated device: fixed traits drawn from the seed, plus its moving state."""

    index: int
    device_id: str
    location: str
    kind: str  # idle | recording | paused | one of PROBLEM_KINDS
    rng: random.Random
    birth_seq: int
    instance: str
    version: str
    service: str
    disk_total: int
    disk_free: int
    level_dbfs: float
    temp_c: float
    phase: float  # 0..1: where in the interval this device publishes
    variant: int  # picks between two ways of having its problem
    seq: int = 0
    rounds: int = 0
    encounter_ref: str | None = None
    recording_seq: int | None = None
    elapsed_s: float = 0.0
    encounter_len_s: float = 900.0
    backlog_recordings: int = 0
    backlog_bytes: int = 0
    oldest_age_s: float | None = None
    frozen_at: datetime | None = None  # offline/stale: when its last status was built


def assign_kinds(count: int, rng: random.Random) -> list[str]:
    """About 70 % idle, 15 % recording (a fifth of them paused), the rest one problem each,
    cycling through PROBLEM_KINDS so every kind shows as soon as the fleet is big enough."""
    problems = min(count, max(round(count * 0.15), min(len(PROBLEM_KINDS), count // 4)))
    recording = min(count - problems, round(count * 0.15))
    kinds = [PROBLEM_KINDS[i % len(PROBLEM_KINDS)] for i in range(problems)]
    kinds += ["paused" if i % 5 == 4 else "recording" for i in range(recording)]
    kinds += ["idle"] * (count - len(kinds))
    rng.shuffle(kinds)
    return kinds


def seeded(key: str | int) -> random.Random:
    """A reproducible generator for simulated values (not for anything secret)."""
    return random.Random(key)  # noqa: S311


def _hex(rng: random.Random, digits: int) -> str:
    return f"{rng.getrandbits(4 * digits):0{digits}x}"


class SimulatedDevices:
    """N schema-valid devices and their messages at any moment (no network).

    Device ids `room-001`...; `speed` makes simulated time run faster: each device reports
    every interval_s / speed wall seconds (and says so in its `interval_s`, so it is not
    stale), each report moving its encounter and backlog on by interval_s.
    """

    def __init__(
        self,
        prefix: str = "edge-recorder",
        count: int = 50,
        seed: int = 1,
        interval_s: float = 30.0,
        speed: float = 1.0,
    ) -> None:
        if count < 1 or interval_s <= 0 or speed <= 0:
            raise ValueError("count, interval_s and speed must be positive")
        self.prefix = prefix
        self.seed, self.interval_s, self.speed = seed, interval_s, speed
        self.period_s = interval_s / speed  # wall seconds between one device's statuses
        master = seeded(seed)
        kinds = assign_kinds(count, master)
        self.devices = [self._make_device(i, kind) for i, kind in enumerate(kinds)]
        self._by_id = {d.device_id: d for d in self.devices}
        self._lock = threading.Lock()  # the publishing threads move devices on under it

    def _make_device(self, index: int, kind: str) -> SimDevice:
        device_id = f"room-{index + 1:03d}"
        rng = seeded(f"{self.seed}/{device_id}")
        total = rng.choice((32, 64, 128)) * 10**9
        device = SimDevice(
            index=index,
            device_id=device_id,
            location=f"Clinic {'ABCDEFGH'[index // 50 % 8]} room {index % 50 + 1}",
            kind=kind,
            rng=rng,
            birth_seq=rng.randint(1, 400),
            instance=_hex(rng, 8),
            version=rng.choice(VERSIONS),
            service=rng.choice(SERVICES),
            disk_total=total,
            disk_free=int(total * rng.uniform(0.3, 0.9)),
            level_dbfs=round(rng.uniform(-62.0, -45.0), 1),
            temp_c=round(rng.uniform(42.0, 58.0), 1),
            phase=rng.random(),
            variant=rng.randrange(2),
        )
        if kind == "disk_low":
            device.disk_free = rng.randint(200, 900) * 2**20
        if kind in ("recording", "paused", "alarm"):
            self._new_encounter(device)
            device.elapsed_s = rng.uniform(0, device.encounter_len_s)
        if kind == "backlog_growing":
            device.backlog_recordings = rng.randint(2, 6)
            device.backlog_bytes = device.backlog_recordings * rng.randint(8, 40) * 2**20
            device.oldest_age_s = float(rng.randint(1800, 7200))
        return device

    @staticmethod
    def _new_encounter(device: SimDevice) -> None:
        device.encounter_ref = _hex(device.rng, 12)
        device.recording_seq = 1
        device.elapsed_s = 0.0
        device.encounter_len_s = device.rng.uniform(300, 1800)

    def kinds(self) -> dict[str, int]:
        """How many devices of each kind (idle, recording, paused, each problem)."""
        out: dict[str, int] = {}
        for device in self.devices:
            out[device.kind] = out.get(device.kind, 0) + 1
        return out

    # ------------------------------------------------------------------ payloads (pure)

    def _topic(self, device: SimDevice, leaf: str) -> str:
        return f"{self.prefix}/{device.device_id}/{leaf}"

    def _event(
        self,
        device: SimDevice,
        now: datetime,
        kind: str,
        severity: str = "info",
        code: str | None = None,
        details: dict[str, Scalar] | None = None,
    ) -> Message:
        device.seq += 1
        payload = {
            "v": SCHEMA_VERSION,
            "device_id": device.device_id,
            "instance": device.instance,
            "birth_seq": device.birth_seq,
            "seq": device.seq,
            "type": kind,
            "severity": severity,
            "at": iso(now),
            "encounter_ref": device.encounter_ref,
            "code": code,
            "message": None,
            "details": details or {},
        }
        return Message(self._topic(device, "events"), payload, False)

    def availability(self, device: SimDevice, now: datetime) -> dict[str, Any]:
        """Retained presence: online, or (offline kind) exactly what its Last Will says."""
        lost = device.kind == "offline"
        return {
            "v": SCHEMA_VERSION,
            "state": "offline" if lost else "online",
            "birth_seq": device.birth_seq,
            "reason": "lost" if lost else "connected",
            "at": iso(device.frozen_at if lost and device.frozen_at else now),
        }

    def status(self, device: SimDevice, now: datetime) -> dict[str, Any]:
        """The retained status document, built as the device would (status.schema.json)."""
        kind, rng, v = device.kind, device.rng, device.variant
        state = {"recording": "recording", "alarm": "recording", "paused": "paused"}.get(kind)
        state = state or ("error" if kind == "error" else "idle")
        failure = {"code": "unauthorized", "message": "the service refused the credentials"}
        error = {**failure, "at": iso(now - timedelta(minutes=20))} if kind == "error" else None
        mic_dead = kind == "mic_dead"
        level = None if mic_dead else min(0.0, round(device.level_dbfs + rng.gauss(0, 2), 1))
        if state == "recording" and level is not None:
            level = min(0.0, round(level + 12, 1))
        hot = kind == "throttled" and v == 1
        flags = {
            "under_voltage": kind == "throttled" and v == 0,
            "freq_capped": hot,
            "throttled": kind == "throttled" and v == 0,
            "soft_temp_limit": hot,
        }
        raw = sum(bit for bit, on in zip((1, 2, 4, 8), flags.values(), strict=True) if on)
        flags_occurred = {f"{name}_occurred": on for name, on in flags.items()}
        temp = round((82 + 4 * device.phase if hot else device.temp_c) + rng.gauss(0, 0.4), 1)
        encounter = state in ("recording", "paused")
        return {
            "v": SCHEMA_VERSION,
            "device_id": device.device_id,
            "location": device.location,
            "at": iso(now),
            "birth_seq": device.birth_seq,
            "interval_s": self.period_s,
            "state": state,
            "error_reason": "delivery failed: unauthorized" if kind == "error" else None,
            "encounter_ref": device.encounter_ref if encounter else None,
            "recording_seq": device.recording_seq if encounter else None,
            "encounter_elapsed_s": round(device.elapsed_s, 1) if encounter else None,
            "alarms": [("live_silent", "mic_silent")[v]] if kind == "alarm" else [],
            "warnings": [],
            "uplink_online": kind not in ("error", "backlog_growing"),
            "uplink_service": device.service,
            "last_delivery_at": iso(now - timedelta(seconds=90 + device.phase * 3000)),
            "error": error,
            "last_error": error,
            "backlog": {
                "recordings": device.backlog_recordings,
                "bytes": device.backlog_bytes,
                "oldest_age_s": device.oldest_age_s,
                "quarantined": 0,
            },
            "mic": {
                "present": not (mic_dead and v == 0),
                "device": "plughw:CARD=ArrayUAC10",
                "level_dbfs": level,
                "peak_dbfs": None if level is None else min(0.0, round(level + 18, 1)),
                "clipped_samples": 0,
                "xruns": 0,
                "digital_silence": mic_dead and v == 1,
                "last_error": "capture device disappeared" if mic_dead and v == 0 else None,
            },
            "system": {
                "disk_free_bytes": device.disk_free,
                "disk_total_bytes": device.disk_total,
                "cpu_temp_c": temp,
                "throttled": {"raw": raw << 16 | raw, **flags, **flags_occurred},
                "uptime_s": 86400.0 + device.rounds * self.interval_s,
                "process_uptime_s": 3600.0 + device.rounds * self.interval_s,
                "version": device.version,
                **PLATFORM,
                "ip": f"10.20.{device.index // 250}.{device.index % 250 + 1}",
                "hostname": device.device_id,
            },
            "mqtt": {"protocol": "5", **dict.fromkeys(MQTT_COUNTERS, 0)},
        }

    def _advance(self, device: SimDevice, now: datetime) -> list[Message]:
        """Move the device on by one interval of simulated time; the events that produces."""
        events: list[Message] = []
        rng, step = device.rng, self.interval_s
        if device.kind in ("recording", "alarm"):
            device.elapsed_s += step  # streamed live: nothing waits in its backlog
            if device.elapsed_s >= device.encounter_len_s:
                delivered: dict[str, Scalar] = {
                    "recordings": device.recording_seq or 1,
                    "bytes": device.backlog_bytes,
                }
                events.append(self._event(device, now, "encounter_stopped"))
                events.append(self._event(device, now, "encounter_delivered", details=delivered))
                self._new_encounter(device)
                events.append(self._event(device, now, "encounter_started"))
        elif device.kind == "backlog_growing":
            device.backlog_bytes += rng.randint(1, 4) * 2**20
            device.oldest_age_s = (device.oldest_age_s or 0.0) + step
            if rng.random() < 0.2:
                device.backlog_recordings += 1
        elif device.kind == "disk_low":
            device.disk_free = max(50 * 2**20, device.disk_free - rng.randint(0, 2) * 2**20)
        if device.kind == "error" and device.rounds % 10 == 0:
            error = self._event(device, now, "error", "error", "unauthorized", {"attempts": 3})
            events.append(error)
        elif device.kind == "idle" and rng.random() < 0.01:
            details: dict[str, Scalar] = {"command": "identify", "ok": True}
            events.append(self._event(device, now, "command", details=details))
        return events

    def device_messages(self, device: SimDevice, now: datetime) -> list[Message]:
        """One device's messages for one round at `now` (advancing its state)."""
        out: list[Message] = []
        first = device.rounds == 0
        if first:
            if device.kind in ("offline", "stale"):
                intervals = 240 if device.kind == "offline" else 6 + 4 * device.variant
                device.frozen_at = now - timedelta(seconds=intervals * self.period_s)
            out.append(
                Message(self._topic(device, "availability"), self.availability(device, now), True)
            )
            if device.kind != "offline":
                out.append(self._event(device, now, "started"))
            if device.kind == "alarm":
                name = ("live_silent", "mic_silent")[device.variant]
                out.append(self._event(device, now, "alarm", "warning", name))
        if device.frozen_at is None:
            out += self._advance(device, now)
            out.append(Message(self._topic(device, "status"), self.status(device, now), True))
        elif first:
            status = self.status(device, device.frozen_at)
            out.append(Message(self._topic(device, "status"), status, True))
        device.rounds += 1
        return out

    def round_messages(self, now: datetime) -> list[Message]:
        """Every device's messages for one round at `now`, in device order."""
        with self._lock:
            return [m for d in self.devices for m in self.device_messages(d, now)]

    # ------------------------------------------------------------------ history

    def backfill(self, history: History, hours: float = 24.0, now: float | None = None) -> int:
        """Offer `hours` of plausible samples per device at history.sample_s spacing, flushing
        as it goes; returns the rows written. Offline and stale devices stop when they went
        quiet; a dead microphone's level is missing for the last eighth of the span."""
        from edge_recorder.dashboard.history import Sample  # imported when needed

        end = time.time() if now is None else now
        step = history.sample_s
        points = int(hours * 3600 / step)
        written = offered = 0
        for device in self.devices:
            rng = seeded(f"{self.seed}/{device.device_id}/history")
            quiet_s = {"offline": 240 * self.period_s, "stale": 10 * self.period_s}
            until = end - quiet_s.get(device.kind, 0.0)
            silent_from = end - hours * 3600 / 8 if device.kind == "mic_dead" else math.inf
            for i in range(1, points + 1):  # (end - hours, end]: one chart's worth
                t = end - (points - i) * step
                if t > until:
                    break
                values = self._sample(device, rng, t, i / max(points, 1), t >= silent_from)
                sample = Sample(device.device_id, t, *values)
                if history.offer(sample):
                    offered += 1
                    if offered % FLUSH_EVERY == 0:
                        written += history.flush()
        return written + history.flush()

    def _sample(
        self, device: SimDevice, rng: random.Random, t: float, progress: float, silent: bool
    ) -> tuple[int, float | None, int, float]:
        """(backlog bytes, mic level, disk free, CPU temperature) at `t`: busier in clinic
        hours, each problem kind drifting towards its current state."""
        hour = (t % 86400) / 3600
        busy = 1.0 if 8 <= hour < 18 else 0.0
        kind = device.kind
        level = None if silent else min(0.0, device.level_dbfs + 10 * busy + rng.gauss(0, 2))
        backlog = 0
        if kind in ("recording", "alarm", "paused") and busy:
            backlog = int((t % 900) / 900 * 48 * 2**20)
        elif kind == "backlog_growing":
            backlog = int(device.backlog_bytes * max(0.0, progress - 0.75) * 4)
        free = device.disk_free + int((1 - progress) * 2 * GIB * (kind == "disk_low"))
        free += int(math.sin(t / 7200) * 50 * 2**20 * (kind != "disk_low"))
        hot = kind == "throttled" and device.variant == 1
        temp = (80 + 4 * device.phase if hot else device.temp_c) + 4 * busy + rng.gauss(0, 0.5)
        mic = None if level is None else round(level, 1)
        return backlog, mic, max(0, free), round(temp, 1)
