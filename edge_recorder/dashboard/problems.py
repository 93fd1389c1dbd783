"""What is wrong with a device, worst first (pure).

One ordered list of problem codes decides both what the fleet page says and where a device
sorts: a device's rank is its worst problem's rank, and devices without problems follow by
state (recording before paused before idle), so the top of the page is always the device an
operator should look at first. Everything here derives from a status the device published plus
two trends the fleet model keeps across statuses (`Trend`), and a per-minute count of messages
the dashboard refused (`BadWindow`); nothing reads a clock.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

Severity = Literal["error", "warning"]

STALE_FACTOR = 3.0  # online but the device's own `at` is older than 3 status intervals
DISK_LOW_BYTES = 1024**3
DISK_LOW_FRACTION = 0.10
HOT_C = 80.0
CLIP_PEAK_DBFS = -0.5
BACKLOG_OLD_S = 900.0
BACKLOG_GROWTH_STATUSES = 3  # bytes grew in each of this many consecutive statuses
BAD_WINDOW_S = 3600.0

RANK: dict[str, int] = {
    "offline": 0,
    "error": 1,
    "alarm": 2,
    "backlog_growing": 3,
    "mic_dead": 4,
    "mic_clipping": 5,
    "array_mic_fault": 5,
    "array_calibration_fallback": 5,
    "disk_low": 6,
    "throttled": 7,
    "stale": 8,
    "bad_input": 9,
}
# The device status warnings of the array stage (audio/array/stage.py), in operators' words;
# which mic and why is in the device's log and `edge-recorder record`.
ARRAY_WARNINGS: dict[str, str] = {
    "array_mic_fault": "Array microphone left out of the beam (faulty?)",
    "array_calibration_fallback": "Array calibration not used (blind beam runs)",
}
STATE_RANK: dict[str, int] = {"recording": 10, "paused": 11, "stopping": 11, "idle": 12}
UNKNOWN_RANK = 13


@dataclass(frozen=True)
class Problem:
    """One reason to look at a device; `text` is short English for the fleet table."""

    code: str
    severity: Severity
    text: str

    def as_json(self) -> dict[str, object]:
        return {"code": self.code, "severity": self.severity, "text": self.text}


def rank(problems: Sequence[Problem], state: str | None) -> int:
    """Lower is worse: the worst problem's rank, else 10-13 by state."""
    if problems:
        return min(RANK[p.code] for p in problems)
    return STATE_RANK.get(state or "", UNKNOWN_RANK)


def _dict(value: object) -> Mapping[str, object]:
    return value if isinstance(value, dict) else {}


def _num(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _short(value: object, limit: int = 60) -> str:
    text = str(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def duration(seconds: float) -> str:
    """`75` -> `1m`, `7200` -> `2h` (coarse, for problem texts)."""
    seconds = max(0.0, seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{int(seconds // size)}{unit}"
    return f"{int(seconds)}s"


@dataclass(slots=True)
class Trend:
    """What consecutive statuses say that one status cannot: growing backlog, new clipping.

    A status with the same `at` as the last one (a retained status delivered again on
    reconnect) changes nothing; one older than the last (a device clock set back, a Pi booting
    before NTP) starts a new baseline instead of freezing the trend until the clock catches up.
    """

    at: float | None = None
    backlog_bytes: int | None = None
    clipped: int | None = None
    growth_streak: int = 0
    clip_grew: bool = False

    def update(self, at: float, status: Mapping[str, object]) -> bool:
        """Fold in a status; False for a repeat of the last one (ignored)."""
        if self.at is not None and at == self.at:
            return False
        if self.at is not None and at < self.at:
            self.backlog_bytes = self.clipped = None  # the clock went back: a new baseline
        backlog = _dict(status.get("backlog"))
        size = backlog.get("bytes")
        recordings = backlog.get("recordings")
        if (
            isinstance(size, int)
            and self.backlog_bytes is not None
            and size > self.backlog_bytes
            and isinstance(recordings, int)
            and recordings > 0
        ):
            self.growth_streak += 1
        else:
            self.growth_streak = 0
        clipped = _dict(status.get("mic")).get("clipped_samples")
        self.clip_grew = (
            isinstance(clipped, int) and self.clipped is not None and clipped > self.clipped
        )
        self.at = at
        self.backlog_bytes = size if isinstance(size, int) else None
        self.clipped = clipped if isinstance(clipped, int) else None
        return True


@dataclass(slots=True)
class BadWindow:
    """Refused messages per minute over the last hour: bounded however hard a device floods."""

    buckets: deque[list[int]] = field(default_factory=lambda: deque(maxlen=61))

    def add(self, at: float, count: int = 1) -> None:
        minute = int(at // 60)
        if self.buckets and self.buckets[-1][0] == minute:
            self.buckets[-1][1] += count
        else:
            self.buckets.append([minute, count])

    def count(self, now: float) -> int:
        """Refused in the last hour (to the minute)."""
        start = now - BAD_WINDOW_S
        return sum(n for minute, n in self.buckets if minute * 60 + 60 > start)


def offline_problem(reason: object) -> Problem:
    why = {"lost": " (connection lost)", "shutdown": " (shut down)"}.get(str(reason), "")
    return Problem("offline", "error", f"Offline{why}")


def stale_problem(age_s: float, interval_s: float) -> Problem:
    return Problem(
        "stale",
        "warning",
        f"No status for {duration(age_s)} (reports every {duration(interval_s)})",
    )


def bad_input_problem(count: int, last_kind: str | None) -> Problem:
    last = f" (last: {last_kind})" if last_kind else ""
    plural = "" if count == 1 else "s"
    return Problem(
        "bad_input", "warning", f"Dropped {count} bad message{plural} in the last hour{last}"
    )


def _left_out_text(left_out: object) -> str | None:
    """ "Array mic 3 silent, mic 5 weak: left out of the beam" from the status's list."""
    if not isinstance(left_out, list) or not left_out:
        return None
    named = [
        f"mic {item.get('mic')} {item.get('reason')}"
        for item in left_out[:8]
        if isinstance(item, dict)
    ]
    return f"Array {', '.join(named)}: left out of the beam" if named else None


def status_problems(status: Mapping[str, object], trend: Trend) -> list[Problem]:
    """Problems a status shows by itself plus its trend, in rank order (no presence ones)."""
    found: list[Problem] = []
    error = _dict(status.get("error"))
    parts = []
    if status.get("state") == "error":
        reason = status.get("error_reason")
        parts.append(f"In error state ({_short(reason)})" if reason else "In error state")
    if error:
        parts.append(f"Delivery failing ({_short(error.get('code'), 64)})")
    if parts:
        found.append(Problem("error", "error", "; ".join(parts)))
    alarms = status.get("alarms")
    for name in alarms if isinstance(alarms, list) else []:
        found.append(Problem("alarm", "error", f"Alarm: {_short(name, 64)}"))
    backlog = _dict(status.get("backlog"))
    recordings = backlog.get("recordings")
    oldest = _num(backlog.get("oldest_age_s"))
    if isinstance(recordings, int) and recordings > 0:
        old = oldest is not None and oldest > BACKLOG_OLD_S
        if old or trend.growth_streak >= BACKLOG_GROWTH_STATUSES:
            age = f", oldest {duration(oldest)}" if oldest is not None else ""
            found.append(
                Problem("backlog_growing", "warning", f"Backlog growing: {recordings} rec{age}")
            )
    mic = _dict(status.get("mic"))
    if mic.get("present") is False:
        found.append(Problem("mic_dead", "error", "Microphone missing"))
    elif mic.get("digital_silence"):
        found.append(Problem("mic_dead", "error", "Microphone gives digital silence"))
    elif mic.get("last_error"):
        found.append(Problem("mic_dead", "error", "Microphone error"))
    peak = _num(mic.get("peak_dbfs"))
    if trend.clip_grew or (peak is not None and peak >= CLIP_PEAK_DBFS):
        why = "new clipped samples" if trend.clip_grew else f"peak {peak:.1f} dBFS"
        found.append(Problem("mic_clipping", "warning", f"Microphone clipping ({why})"))
    warnings = status.get("warnings")
    listed = warnings if isinstance(warnings, list) else []
    for code, text in ARRAY_WARNINGS.items():
        if code in listed:
            if code == "array_mic_fault":
                text = _left_out_text(mic.get("array_left_out")) or text
            found.append(Problem(code, "warning", text))
    system = _dict(status.get("system"))
    free = _num(system.get("disk_free_bytes"))
    total = _num(system.get("disk_total_bytes"))
    if free is not None and (
        free < DISK_LOW_BYTES
        or (total is not None and total > 0 and free < DISK_LOW_FRACTION * total)
    ):
        share = f", {100 * free / total:.0f} %" if total else ""
        found.append(
            Problem("disk_low", "warning", f"Disk low: {free / 1024**3:.1f} GiB free{share}")
        )
    throttled = _dict(system.get("throttled"))
    heat = [
        text
        for key, text in (
            ("under_voltage", "under-voltage"),
            ("throttled", "CPU throttled"),
            ("freq_capped", "CPU frequency capped"),
        )
        if throttled.get(key) is True
    ]
    temp = _num(system.get("cpu_temp_c"))
    if temp is not None and temp >= HOT_C:
        heat.append(f"CPU {temp:.0f} °C")
    if heat:
        text = ", ".join(heat)
        found.append(Problem("throttled", "warning", text[0].upper() + text[1:]))
    return found
