"""The fleet page in a real browser: problems first, counts, search and filter, live updates,
the broker and connection banners, untrusted text, the narrow-screen cards."""

from __future__ import annotations

import json
import re
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from edge_recorder.dashboard.simulate import SimulatedFleet
from tests.browser.conftest import Dashboard, DashboardFactory, Devices
from tests.support.mosquitto import Mosquitto

FLEET_SIZE = 60  # over 50, so the simulator uses two clinics (A and B) in the locations


def api(dashboard: Dashboard, path: str) -> Any:
    with urllib.request.urlopen(dashboard.url + path, timeout=10) as response:
        return json.loads(response.read())


@pytest.fixture
def fleet(mosquitto_broker: Mosquitto) -> Iterator[SimulatedFleet]:
    simulated = SimulatedFleet(
        mosquitto_broker.host, mosquitto_broker.port, count=FLEET_SIZE, seed=7, interval_s=30.0
    )
    simulated.publish_all()
    yield simulated
    simulated.stop()


@pytest.fixture
def dashboard(dashboard_factory: DashboardFactory, fleet: SimulatedFleet) -> Dashboard:
    return dashboard_factory()


def row_ids(page: Page) -> list[str]:
    ids: list[str] = page.locator("[data-testid=fleet-table] tbody tr").evaluate_all(
        "rows => rows.map(r => r.dataset.deviceId)"
    )
    return ids


def open_fleet(page: Page, dashboard: Dashboard, total: int = FLEET_SIZE) -> None:
    page.goto(dashboard.url + "/")
    expect(page.locator("[data-testid=counts] [data-count=total]")).to_have_text(str(total))


def test_problems_first_in_the_servers_rank_order_with_counts(
    page: Page, dashboard: Dashboard
) -> None:
    open_fleet(page, dashboard)
    rows = page.locator("[data-testid=fleet-table] tbody tr")
    expect(rows).to_have_count(FLEET_SIZE)
    expect(page.get_by_test_id("shown")).to_have_text(f"{FLEET_SIZE} devices")

    served = api(dashboard, "/api/fleet")
    assert row_ids(page) == [d["device_id"] for d in served["devices"]]
    ranks = [int(r) for r in rows.evaluate_all("rows => rows.map(r => r.dataset.rank)")]
    assert ranks == sorted(ranks)
    assert ranks[0] == 0  # the simulated fleet has an offline device: it comes first

    for key, value in served["counts"].items():
        expect(page.locator(f"[data-testid=counts] [data-count={key}]")).to_have_text(str(value))
    assert served["counts"]["problem"] >= 8  # every simulated problem kind is present

    first = rows.first
    expect(first.locator(".presence")).to_contain_text("offline")
    expect(first.locator(".problems")).to_contain_text(served["devices"][0]["problems"][0]["text"])
    expect(first.locator(".problems")).to_contain_text("ERROR")  # words, not colour alone
    expect(first.locator(".device a")).to_have_attribute(
        "href", f"/devices/{served['devices'][0]['device_id']}"
    )
    healthy = rows.nth(FLEET_SIZE - 1)
    expect(healthy.locator(".problems")).to_have_text("OK")
    expect(healthy.locator(".seen")).to_have_text(re.compile(r"^\d+s ago$"))


def test_ages_count_up_from_the_devices_own_time(page: Page, dashboard: Dashboard) -> None:
    open_fleet(page, dashboard)
    seen = page.locator("[data-testid=fleet-table] tbody tr").last.locator(".seen")
    expect(seen).to_have_text(re.compile(r"^\d+s ago$"))
    before = seen.inner_text()
    # no message arrives (the simulator publishes every 30 s): the page ticks by itself
    expect(seen).not_to_have_text(before, timeout=5000)


def test_search_by_id_and_location_and_filter_by_state(page: Page, dashboard: Dashboard) -> None:
    open_fleet(page, dashboard)
    served = api(dashboard, "/api/fleet")
    rows = page.locator("[data-testid=fleet-table] tbody tr")
    search = page.get_by_test_id("search")

    search.fill("ROOM-01")  # case-insensitive, substring of the id
    expect(rows).to_have_count(10)
    expect(page.get_by_test_id("shown")).to_have_text(f"10 of {FLEET_SIZE} devices")
    assert all(i.startswith("room-01") for i in row_ids(page))

    in_b = [d["device_id"] for d in served["devices"] if "clinic b" in d["location"].lower()]
    search.fill("clinic b")
    expect(rows).to_have_count(len(in_b))
    expect(rows.first).to_have_attribute("data-device-id", in_b[0])  # same count as before
    expect(rows.last).to_have_attribute("data-device-id", in_b[-1])
    assert row_ids(page) == in_b  # still in rank order

    search.fill("")
    page.get_by_test_id("filter").select_option("offline")
    expect(rows).to_have_count(served["counts"]["offline"])
    for presence in rows.locator(".presence").all_inner_texts():
        assert presence.startswith("offline")

    page.get_by_test_id("filter").select_option("recording")
    expect(rows).to_have_count(served["counts"]["recording"])
    for state in rows.locator(".state").all_inner_texts():
        assert state.startswith("recording")

    # the counts in the header are filters too
    page.locator("[data-testid=counts] [data-count=problem]").click()
    expect(page.get_by_test_id("filter")).to_have_value("problems")
    expect(rows).to_have_count(served["counts"]["problem"])
    expect(page).to_have_url(re.compile(r"filter=problems"))
    page.reload()  # the view survives a reload (it is in the URL)
    expect(page.get_by_test_id("filter")).to_have_value("problems")
    expect(rows).to_have_count(served["counts"]["problem"])

    search.fill("no-such-device")
    expect(rows).to_have_count(0)
    expect(page.get_by_test_id("empty")).to_be_visible()
    expect(page.get_by_test_id("shown")).to_have_text(f"0 of {FLEET_SIZE} devices")


def test_a_live_update_appears_and_reorders_without_reload(
    page: Page, dashboard: Dashboard, devices: Devices
) -> None:
    open_fleet(page, dashboard)
    page.evaluate("window.__notReloaded = true")

    devices.device("zz-new", "Ward 9 bed 2")
    row = page.locator("tr[data-device-id=zz-new]")
    expect(row).to_be_visible()
    expect(row.locator(".location")).to_have_text("Ward 9 bed 2")
    expect(row).to_have_attribute("data-rank", "12")  # idle, no problem
    expect(page.locator("[data-count=total]")).to_have_text(str(FLEET_SIZE + 1))
    expect(page.get_by_test_id("shown")).to_have_text(f"{FLEET_SIZE + 1} devices")
    expect(page.get_by_test_id("updated")).to_have_text(re.compile(r"^\d{1,2}:\d{2}:\d{2}$"))
    # idle devices sort by id: "zz-new" is the last row
    assert row_ids(page)[-1] == "zz-new"

    failing = {"code": "unauthorized", "message": "token rejected", "at": "2026-01-01T00:00:00Z"}
    devices.status("zz-new", "Ward 9 bed 2", state="error", error=failing)
    expect(row).to_have_attribute("data-rank", "1")
    expect(row.locator(".state")).to_have_text("error")
    expect(row.locator(".problems")).to_contain_text("ERROR")
    ids = row_ids(page)
    ranks = {d["device_id"]: d["rank"] for d in api(dashboard, "/api/fleet")["devices"]}
    assert ids == sorted(ids, key=lambda i: (ranks[i], i))
    assert ids.index("zz-new") < len([r for r in ranks.values() if r <= 1])
    assert page.evaluate("window.__notReloaded") is True


def test_broker_lost_banner(page: Page, dashboard: Dashboard, mosquitto_broker: Mosquitto) -> None:
    open_fleet(page, dashboard)
    banner = page.get_by_test_id("broker-banner")
    expect(banner).to_be_hidden()
    mosquitto_broker.stop()
    expect(banner).to_be_visible(timeout=15000)
    expect(banner).to_contain_text("broker")
    expect(page.get_by_test_id("conn-banner")).to_be_hidden()  # the dashboard itself is fine
    # the last known fleet stays on screen
    expect(page.locator("[data-testid=fleet-table] tbody tr")).to_have_count(FLEET_SIZE)
    mosquitto_broker.start()
    expect(banner).to_be_hidden(timeout=40000)  # paho retries with back-off up to 30 s


def test_dashboard_connection_lost_banner(page: Page, dashboard: Dashboard) -> None:
    open_fleet(page, dashboard)
    conn = page.get_by_test_id("conn-banner")
    expect(conn).to_be_hidden()
    dashboard.stop()
    expect(conn).to_be_visible(timeout=15000)
    expect(conn).to_contain_text("connection to dashboard lost")
    expect(page.get_by_test_id("broker-banner")).to_be_hidden()


def test_device_text_is_shown_as_text_never_markup(
    page: Page, dashboard: Dashboard, devices: Devices
) -> None:
    hostile = '<img src=x data-evil="1"><script>window.__pwned=1</script>'
    devices.device("ward-x", hostile)
    open_fleet(page, dashboard, FLEET_SIZE + 1)
    row = page.locator("tr[data-device-id=ward-x]")
    expect(row.locator(".location")).to_have_text(hostile)
    assert row.locator("img, script").count() == 0
    assert page.evaluate("window.__pwned") is None


def test_one_device_wording(
    page: Page, dashboard_factory: DashboardFactory, devices: Devices
) -> None:
    devices.device("solo-1", "Ward 1 room 1")
    single = dashboard_factory()
    page.goto(single.url + "/")
    expect(page.get_by_test_id("shown")).to_have_text("1 device")
    page.get_by_test_id("search").fill("nothing")
    expect(page.get_by_test_id("shown")).to_have_text("0 of 1 device")


def test_narrow_screen_shows_cards(page: Page, dashboard: Dashboard) -> None:
    page.set_viewport_size({"width": 400, "height": 800})
    open_fleet(page, dashboard)
    expect(page.locator("[data-testid=fleet-table] thead")).to_be_hidden()
    row = page.locator("[data-testid=fleet-table] tbody tr").first
    expect(row).to_be_visible()
    box = row.bounding_box()
    assert box is not None and box["width"] <= 400
    # every cell is labelled on a card, since the header row is gone
    label = row.locator(".problems").evaluate("td => getComputedStyle(td, '::before').content")
    assert label == '"Problems"'
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 400, f"the page scrolls sideways ({width}px)"


WATCH_MUTATIONS = """() => {
  const body = document.querySelector('[data-testid=fleet-table] tbody');
  window.__rows = new Map([...body.children].map(tr => [tr.dataset.deviceId, tr]));
  window.__touched = new Set();
  window.__bodyMoves = 0;
  new MutationObserver(records => {
    for (const m of records) {
      if (m.target === body) { window.__bodyMoves += m.addedNodes.length; continue; }
      const node = m.target.nodeType === 1 ? m.target : m.target.parentElement;
      if (node.closest('td.seen')) continue;  // the ages tick every second everywhere
      window.__touched.add(node.closest('tr').dataset.deviceId);
    }
  }).observe(body, {subtree: true, childList: true, characterData: true, attributes: true});
}"""
SAME_ROWS = """() => [...document.querySelectorAll('[data-testid=fleet-table] tbody tr')]
  .every(tr => window.__rows.get(tr.dataset.deviceId) === tr)"""


def test_an_update_rewrites_only_the_changed_row_in_place(
    page: Page, dashboard: Dashboard, devices: Devices
) -> None:
    open_fleet(page, dashboard)
    served = api(dashboard, "/api/fleet")["devices"]
    quiet = next(d for d in served if d["rank"] == 12)  # an idle device without problems
    device_id, location = quiet["device_id"], quiet["location"]
    page.evaluate(WATCH_MUTATIONS)

    devices.status(device_id, location, **{"backlog.recordings": 1, "backlog.bytes": 5 << 20})
    row = page.locator(f"tr[data-device-id={device_id}]")
    expect(row.locator(".backlog")).to_have_text("1 rec · 5.0 MiB")
    assert page.evaluate("[...window.__touched]") == [device_id]
    assert page.evaluate("window.__bodyMoves") == 0  # same rank: no re-ordering
    assert page.evaluate(SAME_ROWS) is True  # no row was rebuilt

    devices.status(device_id, location, state="error", error_reason="test")
    expect(row).to_have_attribute("data-rank", "1")
    assert page.evaluate("[...window.__touched]") == [device_id]
    assert page.evaluate("window.__bodyMoves") == 1  # one row moved up, nothing else
    assert page.evaluate(SAME_ROWS) is True
