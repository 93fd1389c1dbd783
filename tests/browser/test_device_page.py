"""The device page in a real browser: every status field, events and births, charts drawn
from the stored history and grown live, and the command buttons against an MQTT responder."""

from __future__ import annotations

import re
import time
from pathlib import Path

from playwright.sync_api import Page, expect

from edge_recorder.dashboard.history import History, Sample
from tests.browser.conftest import DashboardFactory, Devices
from tests.support.dashboard import availability, response

CHARTS = ("backlog_bytes", "mic_level_dbfs", "disk_free_bytes", "cpu_temp_c")
SEEDED = 30
CPU_GAPS = 5  # samples without a CPU temperature: not drawn, not counted


def seed_history(path: Path, device_id: str) -> None:
    """Samples every 5 minutes over the last 2.5 hours, through the History API."""
    history = History(path, retention_s=7 * 86400, sample_s=60)
    history.open()
    now = time.time()
    for i in range(SEEDED):
        history.offer(
            Sample(
                device_id=device_id,
                at=now - (SEEDED - i) * 300,
                backlog_bytes=i * 1_000_000,
                mic_level_dbfs=-40.0 - i % 7,
                disk_free_bytes=20_000_000_000 - i * 10_000_000,
                cpu_temp_c=None if i < CPU_GAPS else 50.0 + i / 10,
            )
        )
    assert history.flush() == SEEDED
    history.close()


def points(page: Page, chart: str) -> int:
    value = page.get_by_test_id(f"chart-{chart}").get_attribute("data-points")
    assert value is not None
    return int(value)


def test_charts_are_drawn_from_history_and_grow_live(
    page: Page, tmp_path: Path, dashboard_factory: DashboardFactory, devices: Devices
) -> None:
    seed_history(tmp_path / "history.sqlite3", "bed-7")
    dashboard = dashboard_factory()
    devices.device("bed-7", "Ward 3 bed 7", **{"backlog.bytes": 31_000_000})
    page.goto(f"{dashboard.url}/devices/bed-7")
    expect(page.get_by_test_id("device-title")).to_contain_text("bed-7")
    for chart in CHARTS:
        box = page.get_by_test_id(f"chart-{chart}")
        expect(box).to_have_attribute("data-points", re.compile(r"^[1-9]\d*$"))
        expect(box.locator("canvas")).to_have_count(1)
    backlog = points(page, "backlog_bytes")
    assert backlog >= SEEDED
    assert points(page, "cpu_temp_c") == backlog - CPU_GAPS
    assert points(page, "mic_level_dbfs") == backlog

    # a new status (a later device `at`) adds one point to every chart without a reload
    page.evaluate("window.__notReloaded = true")
    expect(page.locator("tr[data-field='backlog.bytes'] td")).to_contain_text("31000000")
    before = points(page, "backlog_bytes")
    devices.status("bed-7", "Ward 3 bed 7", **{"backlog.bytes": 32_000_000})
    expect(page.locator("tr[data-field='backlog.bytes'] td")).to_contain_text("32000000")
    expect(page.get_by_test_id("chart-backlog_bytes")).to_have_attribute(
        "data-points", str(before + 1)
    )
    assert page.evaluate("window.__notReloaded") is True


def test_a_device_without_history_still_gets_empty_charts(
    page: Page, dashboard_factory: DashboardFactory, devices: Devices
) -> None:
    dashboard = dashboard_factory()
    devices.device("bed-8", "Ward 3 bed 8", **{"mic.level_dbfs": None})
    page.goto(f"{dashboard.url}/devices/bed-8")
    mic = page.get_by_test_id("chart-mic_level_dbfs")
    expect(mic.locator("canvas")).to_have_count(1)
    expect(mic).to_have_attribute("data-points", "0")
    expect(mic.locator(".no-data")).to_be_visible()


def test_every_status_field_events_and_births(
    page: Page, dashboard_factory: DashboardFactory, devices: Devices
) -> None:
    dashboard = dashboard_factory()
    devices.device("bed-9", "Ward 3 bed 9", birth_seq=7, alarms=["mic_silent"])
    devices.event("bed-9", 1, "started")
    devices.event("bed-9", 2, "alarm", severity="warning", code="mic_silent")
    # a Last Will from an older session arrives late: shown, with its verdict, and ignored
    devices.availability("bed-9", availability("offline", 6, "lost"))
    page.goto(f"{dashboard.url}/devices/bed-9")

    expect(page.get_by_test_id("device-title")).to_have_text("bed-9 — Ward 3 bed 9")
    fields = page.get_by_test_id("status-fields")
    for key in (
        "v",
        "state",
        "backlog.bytes",
        "mic.level_dbfs",
        "system.throttled.raw",
        "mqtt.protocol",
    ):
        expect(fields.locator(f"tr[data-field='{key}']")).to_have_count(1)
    expect(fields.locator("tr[data-field='alarms'] td")).to_have_text("mic_silent")
    expect(fields.locator("tr[data-field='location'] td")).to_have_text("Ward 3 bed 9")

    events = page.get_by_test_id("events").locator("li")
    expect(events).to_have_count(2)
    expect(events.first).to_contain_text("alarm")  # newest first
    expect(events.first).to_contain_text("WARNING")
    expect(events.last).to_contain_text("started")

    births = page.get_by_test_id("births").locator("li")
    expect(births).to_have_count(2)
    expect(births.first).to_have_attribute("data-verdict", "stale_will")
    expect(births.last).to_have_attribute("data-verdict", "accepted")
    expect(page.get_by_test_id("badges")).to_contain_text("online")  # the stale will lost
    expect(page.get_by_test_id("badges")).to_contain_text("mic_silent")


def test_unknown_device_says_so(page: Page, dashboard_factory: DashboardFactory) -> None:
    dashboard = dashboard_factory()
    page.goto(f"{dashboard.url}/devices/nobody-here")
    expect(page.get_by_test_id("not-found")).to_contain_text("nobody-here")


def test_command_buttons_show_ok_refused_and_no_answer(
    page: Page, dashboard_factory: DashboardFactory, devices: Devices
) -> None:
    dashboard = dashboard_factory(limits={"command_timeout_s": 1.0})
    devices.device("bed-10", "Ward 3 bed 10")
    page.goto(f"{dashboard.url}/devices/bed-10")
    result = page.get_by_test_id("cmd-result")
    identify = page.get_by_test_id("cmd-identify")
    expect(identify).to_be_enabled()  # open mode on loopback: operator

    # a device that answers: ok, with the request id
    after = devices.collector.count()
    identify.click()
    request = devices.command_request("bed-10", "identify", after)
    devices.respond("bed-10", response("bed-10", request["request_id"], "identify"))
    expect(result).to_contain_text("ok")
    expect(result).to_contain_text(request["request_id"])

    # a device that refuses
    after = devices.collector.count()
    page.get_by_test_id("cmd-spool_retry").click()
    request = devices.command_request("bed-10", "spool_retry", after)
    refusal = {"code": "busy", "message": "delivery already running", "reason": None}
    devices.respond(
        "bed-10",
        response("bed-10", request["request_id"], "spool_retry", ok=False, error=refusal),
    )
    expect(result).to_contain_text("refused: busy")
    expect(result).to_contain_text(request["request_id"])

    # a device that never answers
    identify.click()
    expect(result).to_contain_text("no answer")
    expect(result).to_contain_text("dash-")
    expect(identify).to_be_enabled()
