"""The terminal screen of `fleet watch`: problems first, header on top, fits any size, pages."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime

import pytest

from edge_recorder.fleet import payloads
from edge_recorder.fleet.payloads import StatusMeta, availability_payload, status_payload
from edge_recorder.fleet.sysinfo import SystemInfo, parse_throttled
from edge_recorder.fleet.watch import FleetView, ordered, presence, snapshot
from edge_recorder.fleet.watch_screen import Screen, frame, keys, render, turn
from edge_recorder.status import BacklogStatus, DeviceStatus, ErrorInfo, MicStatus

NOW = datetime(2026, 11, 21, 8, 0, tzinfo=UTC)
T = NOW.timestamp()
MIC = MicStatus(present=True, device="hw:CARD=Array", level_dbfs=-40.0)
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
GIB = 1024**3


def online(view: FleetView, device: str, st: DeviceStatus, **kw: object) -> None:
    """A live device: availability online + a status the device built `age` seconds ago."""
    age = float(kw.pop("age", 0.0))  # type: ignore[arg-type]
    info = kw.pop("info", None) or SystemInfo(
        disk_free_bytes=20 * GIB, disk_total_bytes=32 * GIB, hostname="h", version="5.2.0"
    )
    sent = datetime.fromtimestamp(T - age, UTC)
    body = availability_payload("online", 4, "connected", sent)
    view.apply(f"p/{device}/availability", payloads.encode(body), T)
    meta = StatusMeta(device, "Room", 4, 30.0, "5")
    status = status_payload(st, info, meta, sent)  # type: ignore[arg-type]
    view.apply(f"p/{device}/status", payloads.encode(status), T)  # received now


def dead(view: FleetView, device: str) -> None:
    body = availability_payload("offline", 2, "lost", NOW)
    view.apply(f"p/{device}/availability", payloads.encode(body), T)


KINDS = (
    "idle",
    "recording",
    "paused",
    "offline",
    "error",
    "alarm",
    "backlog",
    "mic",
    "disk",
    "throttled",
    "stale",
)


def add(view: FleetView, device: str, kind: str) -> None:
    if kind == "offline":
        dead(view, device)
    elif kind in ("idle", "recording", "paused"):
        online(view, device, DeviceStatus(state=kind, mic=MIC))  # type: ignore[arg-type]
    elif kind == "error":
        online(view, device, DeviceStatus(state="error", error_reason="uplink", mic=MIC))
    elif kind == "alarm":
        online(view, device, DeviceStatus(alarms=["spool_nearly_full_for_a_long_time"], mic=MIC))
    elif kind == "backlog":
        backlog = BacklogStatus(recordings=40, bytes=9_000_000_000, oldest_age_s=5000)
        online(view, device, DeviceStatus(backlog=backlog, mic=MIC))
    elif kind == "mic":
        online(view, device, DeviceStatus(mic=MicStatus(present=False)))
    elif kind == "disk":
        info = SystemInfo(disk_free_bytes=GIB // 2, disk_total_bytes=32 * GIB, hostname="h")
        online(view, device, DeviceStatus(mic=MIC), info=info)
    elif kind == "throttled":
        info = SystemInfo(
            cpu_temp_c=84.0, throttling=parse_throttled("throttled=0x50005"), hostname="h"
        )
        online(view, device, DeviceStatus(state="recording", mic=MIC), info=info)
    else:  # stale: its last status is 10 minutes old, interval 30 s
        online(view, device, DeviceStatus(state="recording", mic=MIC), age=600.0)


def fleet(count: int = 50) -> FleetView:
    view = FleetView("p")
    for n in range(1, count + 1):
        add(view, f"room-{n:03d}-east-wing-ward", KINDS[n % len(KINDS)])
    return view


def test_problems_come_first_in_dashboard_order() -> None:
    view = FleetView("p")
    for kind in KINDS:  # names sort the other way round on purpose
        add(view, f"{10 - KINDS.index(kind)}-{kind}", kind)
    order = [row.device_id.split("-", 1)[1] for row in ordered(view, T)]
    assert order == [
        "offline",
        "error",
        "alarm",
        "backlog",
        "mic",
        "disk",
        "throttled",
        "stale",
        "recording",
        "paused",
        "idle",
    ]
    rows = render(view, T).splitlines()[3:-1]
    assert [r.split()[0].split("-", 1)[1] for r in rows] == order


def test_a_delivery_error_and_a_growing_backlog_count_as_problems() -> None:
    view = FleetView("p")
    failing = ErrorInfo(code="http_503", message="unavailable", at=NOW)
    online(view, "a-failing", DeviceStatus(error=failing, mic=MIC))
    for step in range(4):  # bytes grow in each of the last 3 statuses
        backlog = BacklogStatus(recordings=1, bytes=1000 * (step + 1), oldest_age_s=60)
        online(view, "b-growing", DeviceStatus(backlog=backlog, mic=MIC))
    online(view, "c-fine", DeviceStatus(mic=MIC))
    records = {r["device_id"]: r for r in snapshot(view, T)}
    assert "delivery_error" in records["a-failing"]["alerts"]
    assert records["b-growing"]["alerts"] == ["backlog_growing"]
    assert records["a-failing"]["rank"] < records["b-growing"]["rank"] < records["c-fine"]["rank"]


@pytest.mark.parametrize(("width", "height"), [(60, 20), (100, 30), (30, 10)])
@pytest.mark.parametrize("lost", [None, T - 5])
def test_every_page_fits_the_terminal_header_first(
    width: int, height: int, lost: float | None
) -> None:
    view = fleet(50)
    first = frame(view, T, Screen(width, height, 1, "p @ broker:1883", lost, "q quit"))
    seen: list[str] = []
    for page in range(1, first.pages + 1):
        for color in (False, True):
            screen = Screen(width, height, page, "p @ broker:1883", lost, "q quit")
            lines = frame(view, T, screen, color=color).lines
            plain = [ANSI.sub("", line) for line in lines]
            assert len(plain) <= height
            assert max(len(line) for line in plain) <= width, plain
            assert plain[0].startswith("edge-recorder fleet")
            assert plain[0].endswith(time.strftime("%H:%M:%S", time.localtime(T)))
            assert plain[1].startswith("50 devices")
        seen += [line.split()[0] for line in plain[3 + (lost is not None) : -1]]
    assert len(seen) == 50  # every device on exactly one page (names may be cut)
    assert len(set(seen)) == len(seen) or width < 40


def test_narrow_terminals_drop_the_least_important_columns() -> None:
    view = fleet(50)
    wide = frame(view, T, Screen(200, 80)).lines[2].split()
    assert wide == ["DEVICE", "PRESENCE", "STATE", "SEEN", "BACKLOG", "MIC", "VERSION", "ALERTS"]
    at_100 = frame(view, T, Screen(100, 30)).lines[2].split()
    at_60 = frame(view, T, Screen(60, 20)).lines[2].split()
    assert at_100[:2] == at_60[:2] == ["DEVICE", "PRESENCE"]
    assert at_100[-1] == at_60[-1] == "ALERTS"
    assert "VERSION" not in at_60 and "MIC" not in at_60
    assert len(at_60) < len(at_100) < len(wide)
    body = frame(view, T, Screen(60, 20)).lines[3:-1]
    assert any(line.endswith("…") for line in body)  # long alarm names are cut, not wrapped
    unlimited = render(view, T).splitlines()  # old callers: every row, nothing cut
    assert len(unlimited) == 50 + 4 and not any("…" in line for line in unlimited)


def test_paging_footer_and_clamping() -> None:
    view = fleet(50)
    one = frame(view, T, Screen(100, 30, 1))
    assert one.rows_per_page == 26 and one.pages == 2  # 30 lines - title, counts, titles, footer
    assert one.lines[-1] == "rows 1-26 of 50  page 1/2"
    two = frame(view, T, Screen(100, 30, 2, hint="space/b page, q quit"))
    assert two.lines[-1] == "rows 27-50 of 50  page 2/2  (space/b page, q quit)"
    assert frame(view, T, Screen(100, 30, 99)).page == 2
    lost = frame(view, T, Screen(100, 30, 1, broker_lost_since=T))
    assert lost.lines[-1] == "rows 1-25 of 50  page 1/2"  # the banner takes a row
    assert frame(FleetView("p"), T, Screen(100, 30)).lines[-1] == "no devices yet"


def test_seen_and_stale_come_from_the_devices_own_timestamp() -> None:
    view = FleetView("p")
    # a retained status built 10 minutes ago, delivered to this watcher just now
    online(view, "old", DeviceStatus(state="recording", mic=MIC), age=600.0)
    online(view, "new", DeviceStatus(state="recording", mic=MIC), age=2.0)
    row = view.devices["old"]
    assert row.last_seen == T  # received now ...
    assert presence(row, T) == "stale"  # ... but the device said nothing for 10 minutes
    assert presence(view.devices["new"], T) == "online"
    lines = {line.split()[0]: line.split() for line in render(view, T).splitlines()[3:-1]}
    assert lines["old"][1:4] == ["stale", "recording", "10m"]
    assert lines["new"][1:4] == ["online", "recording", "2s"]
    records = {r["device_id"]: r for r in snapshot(view, T)}
    assert records["old"]["age_s"] == 600.0 and records["old"]["last_seen_s"] == 0.0
    assert records["old"]["at"] == "2026-11-21T07:50:00.000Z"


def test_seen_uses_the_newer_of_status_and_availability() -> None:
    view = FleetView("p")
    online(view, "a", DeviceStatus(mic=MIC), age=300.0)
    fresh = availability_payload("online", 5, "connected", NOW)  # reconnected just now
    view.apply("p/a/availability", payloads.encode(fresh), T)
    assert snapshot(view, T)[0]["age_s"] == 0.0
    assert presence(view.devices["a"], T) == "online"


def test_broker_banner_only_while_disconnected() -> None:
    view = fleet(3)
    since = T - 42
    shown = render(view, T, width=100, height=30, broker_lost_since=since).splitlines()
    expected = f"BROKER LOST since {time.strftime('%H:%M:%S', time.localtime(since))}"
    assert shown[2] == expected + " (reconnecting)"
    assert "\x1b[31m" + expected in render(view, T, color=True, broker_lost_since=since)
    assert not any("BROKER LOST" in line for line in render(view, T, width=100).splitlines())


def test_one_device_is_singular() -> None:
    view = FleetView("p")
    online(view, "solo", DeviceStatus(mic=MIC))
    assert render(view, T).splitlines()[1] == "1 device, 1 online, 0 with problems, 1 idle"
    assert fleet(2).devices and render(fleet(2), T).splitlines()[1].startswith("2 devices")


def test_payload_text_cannot_reach_the_terminal_raw() -> None:
    view = FleetView("p")
    online(view, "evil", DeviceStatus(alarms=["\x1b[2J\x1b]0;owned\x07", "ok\u5bbd"], mic=MIC))
    text = render(view, T, width=80)
    assert "\x1b" not in text and "\x07" not in text and "\u5bbd" not in text
    assert "?[2J" in text


def test_keys_and_paging() -> None:
    assert keys(b" ") == ["next"] and keys(b"\x1b[6~") == ["next"]
    assert keys(b"b\x1b[5~") == ["prev", "prev"]
    assert keys(b"x\x1b[Aq") == ["quit"]  # other keys and arrows are ignored
    assert turn(1, 2, "next") == 2 and turn(2, 2, "next") == 2
    assert turn(2, 2, "prev") == 1 and turn(1, 2, "prev") == 1
