"""The fleet table model: presence by birth order, staleness, alerts, rendering."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from edge_recorder.fleet import payloads
from edge_recorder.fleet.payloads import StatusMeta, availability_payload, status_payload
from edge_recorder.fleet.sysinfo import SystemInfo, parse_throttled
from edge_recorder.fleet.watch import FleetView, alerts, presence, snapshot
from edge_recorder.fleet.watch_screen import render
from edge_recorder.status import BacklogStatus, DeviceStatus, MicStatus

NOW = datetime(2026, 11, 21, 8, 0, tzinfo=UTC)
T = NOW.timestamp()
MIC = MicStatus(present=True, level_dbfs=-40.0)


def avail(view: FleetView, device: str, state: str, seq: int, at: float = T) -> None:
    """An availability built by the device at `at` and received at `at`."""
    sent = datetime.fromtimestamp(at, UTC)
    body = availability_payload(state, seq, "connected" if state == "online" else "lost", sent)  # type: ignore[arg-type]
    view.apply(f"p/{device}/availability", payloads.encode(body), at)


def status(
    view: FleetView,
    device: str,
    seq: int,
    st: DeviceStatus,
    at: float = T,
    info: SystemInfo | None = None,
    received: float | None = None,
) -> None:
    """A status built by the device at `at`, received at `received` (default: at once)."""
    sent = datetime.fromtimestamp(at, UTC)
    body = status_payload(st, info or SystemInfo(), StatusMeta(device, "", seq, 30.0, "5"), sent)
    view.apply(f"p/{device}/status", payloads.encode(body), at if received is None else received)


def test_a_late_will_of_an_older_session_does_not_mark_offline() -> None:
    view = FleetView("p")
    avail(view, "a", "online", 5)
    avail(view, "a", "offline", 4)  # the broker delivered the old session's will late
    assert presence(view.devices["a"], T) == "online"
    avail(view, "a", "offline", 5)  # now this session died
    assert presence(view.devices["a"], T) == "offline"
    avail(view, "a", "online", 6)
    assert presence(view.devices["a"], T) == "online"


def test_order_of_arrival_does_not_matter() -> None:
    view = FleetView("p")
    avail(view, "a", "offline", 4)
    status(view, "a", 5, DeviceStatus(mic=MIC))  # status of a newer session proves life
    assert presence(view.devices["a"], T) == "online"


def test_plain_text_availability_from_other_publishers() -> None:
    view = FleetView("p")
    view.apply("p/x/availability", b"offline", T)
    assert presence(view.devices["x"], T) == "offline"


def test_silent_device_becomes_stale() -> None:
    view = FleetView("p")
    avail(view, "a", "online", 1)
    status(view, "a", 1, DeviceStatus(mic=MIC), at=T)
    assert presence(view.devices["a"], T + 60) == "online"
    assert presence(view.devices["a"], T + 91) == "stale"  # more than 3 intervals of 30 s


def test_alerts() -> None:
    view = FleetView("p")
    hot = SystemInfo(
        disk_free_bytes=10, cpu_temp_c=85.0, throttling=parse_throttled("throttled=0x1")
    )
    st = DeviceStatus(
        state="error",
        alarms=["spool_full"],
        mic=MicStatus(present=False),
        backlog=BacklogStatus(oldest_age_s=7200),
    )
    status(view, "a", 1, st, info=hot)
    assert alerts(view.devices["a"]) == [
        "spool_full",
        "error",
        "mic_missing",
        "backlog_old",
        "disk_low",
        "throttled",
        "hot",
    ]
    status(view, "b", 1, DeviceStatus(mic=MIC))
    assert alerts(view.devices["b"]) == []


def test_the_arrays_status_warnings_are_alerts() -> None:
    """A mic left out of the beam (or a room calibration not used) shows in `fleet watch`;
    the other status warnings (max_duration, auto_stop…) are the encounter's, not alerts."""
    view = FleetView("p")
    st = DeviceStatus(mic=MIC, warnings=["auto_stop", "array_mic_fault"])
    status(view, "a", 1, st)
    assert alerts(view.devices["a"]) == ["array_mic_fault"]
    status(view, "b", 1, DeviceStatus(mic=MIC, warnings=["array_calibration_fallback"]))
    assert alerts(view.devices["b"]) == ["array_calibration_fallback"]


def test_garbage_is_counted_not_fatal() -> None:
    view = FleetView("p")
    assert view.apply("p/a/status", b"{not json", T) is None
    assert view.apply("p/a/status", b"[1]", T) is None
    assert view.apply("p/a/availability", json.dumps({"state": "maybe"}).encode(), T) == "a"
    assert view.apply("other/a/status", b"{}", T) is None
    assert view.apply("p/a/cmd/response", b"{}", T) is None
    assert view.apply("p/a/status", b"", T) is None
    assert view.ignored == 3
    assert presence(view.devices["a"], T) == "unknown"


def test_render_and_snapshot() -> None:
    view = FleetView("p")
    avail(view, "exam-2", "online", 3, at=T - 75)
    status(
        view,
        "exam-2",
        3,
        DeviceStatus(
            state="recording", mic=MIC, backlog=BacklogStatus(recordings=2, bytes=4_900_000)
        ),
        at=T - 75,
    )
    avail(view, "exam-1", "offline", 2)
    table = render(view, T, color=False).splitlines()
    assert table[0].startswith("edge-recorder fleet  p")
    assert table[1] == "2 devices, 1 online, 1 offline, 1 with problems, 1 recording"
    assert table[2].split()[:3] == ["DEVICE", "PRESENCE", "STATE"]
    assert table[3].startswith("exam-1") and "offline (lost)" in table[3]  # problems first
    assert "recording" in table[4] and "2 rec / 4.9 MB" in table[4] and "-40 dBFS" in table[4]
    assert " 1m " in table[4]  # the device's own `at` is 75 s old
    assert table[-1] == "rows 1-2 of 2"
    colored = render(view, T, color=True)
    assert "\x1b[31m" in colored and "\x1b[32m" in colored
    records = snapshot(view, T)
    assert [r["device_id"] for r in records] == ["exam-1", "exam-2"]  # JSON stays by name
    assert records[1]["last_seen_s"] == 75.0 and records[1]["birth_seq"] == 3
    assert records[1]["age_s"] == 75.0 and records[1]["at"] == "2026-11-21T07:58:45.000Z"
    assert records[0]["rank"] < records[1]["rank"]
