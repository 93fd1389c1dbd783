"""Login in a real browser when a users file is configured: the redirect, a wrong password,
success back to the page asked for, the role deciding the command buttons, sign-out."""

from __future__ import annotations

import re

from playwright.sync_api import Page, expect

from tests.browser.conftest import PASSWORD, DashboardFactory, Devices


def sign_in(page: Page, name: str, password: str) -> None:
    page.locator("input[name=username]").fill(name)
    page.locator("input[name=password]").fill(password)
    page.locator("button[type=submit]").click()


def test_login_required_wrong_password_then_success(
    page: Page, dashboard_factory: DashboardFactory, devices: Devices
) -> None:
    devices.device("bed-1", "Ward 1 bed 1")
    dashboard = dashboard_factory(users={"alice": "operator"})

    page.goto(dashboard.url + "/")
    expect(page).to_have_url(re.compile(r"/login\?next=/$"))
    expect(page.get_by_test_id("login-error")).to_be_hidden()

    sign_in(page, "alice", "not the password")
    expect(page).to_have_url(re.compile(r"/login\?failed=1"))
    expect(page.get_by_test_id("login-error")).to_be_visible()

    sign_in(page, "alice", PASSWORD)
    expect(page).to_have_url(dashboard.url + "/")
    expect(page.locator("tr[data-device-id=bed-1]")).to_be_visible()
    expect(page.get_by_test_id("user")).to_contain_text("alice (operator)")

    page.get_by_test_id("user").locator("button[type=submit]").click()  # sign out
    expect(page).to_have_url(re.compile(r"/login"))
    page.goto(dashboard.url + "/")
    expect(page).to_have_url(re.compile(r"/login\?next="))


def test_deep_link_returns_after_login_and_viewers_cannot_command(
    page: Page, dashboard_factory: DashboardFactory, devices: Devices
) -> None:
    devices.device("bed-2", "Ward 1 bed 2")
    dashboard = dashboard_factory(users={"alice": "operator", "victor": "viewer"})

    page.goto(dashboard.url + "/devices/bed-2")
    expect(page).to_have_url(re.compile(r"/login\?next=/devices/bed-2$"))
    sign_in(page, "victor", "wrong")  # a failure keeps where to go next
    expect(page.get_by_test_id("login-error")).to_be_visible()
    sign_in(page, "victor", PASSWORD)
    expect(page).to_have_url(dashboard.url + "/devices/bed-2")
    expect(page.get_by_test_id("device-title")).to_contain_text("bed-2")
    expect(page.get_by_test_id("user")).to_contain_text("victor (viewer)")
    expect(page.get_by_test_id("cmd-identify")).to_be_disabled()
    expect(page.get_by_test_id("cmd-spool_retry")).to_be_disabled()
    expect(page.get_by_test_id("cmd-note")).to_be_visible()
