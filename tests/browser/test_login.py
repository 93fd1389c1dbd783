"""Login in a real browser when a users file is configured: the redirect, a wrong password,
success back to the page asked for, the role deciding the command buttons, sign-out."""

from __future__ import annotations

import re
from pathlib import Path

from playwright.sync_api import Browser, Page, expect

from tests.browser.conftest import PASSWORD, DashboardFactory, Devices
from tests.support.pki import make_pki


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


def test_off_loopback_it_is_https_and_the_browser_must_sign_in(
    browser: Browser, dashboard_factory: DashboardFactory, devices: Devices, tmp_path: Path
) -> None:
    """Listening on every address (not loopback): HTTPS with a login, a Secure session cookie.
    (The browser is told to accept the test CA's certificate; the TLS check itself is
    tests/integration/dashboard/test_serve_cli.py's, with the CA.)"""
    pki = make_pki(tmp_path / "pki", tag="dashboard test")
    devices.device("bed-9", "Ward 9 bed 9")
    dashboard = dashboard_factory(
        users={"alice": "operator"},
        http={"host": "0.0.0.0", "tls_cert_file": pki.server_cert, "tls_key_file": pki.server_key},
    )
    url = re.sub(r"//[^:/]+:", "//127.0.0.1:", dashboard.url)
    assert url.startswith("https://"), url
    context = browser.new_context(ignore_https_errors=True)
    try:
        page = context.new_page()
        page.goto(url + "/")
        expect(page).to_have_url(re.compile(r"/login\?next=/$"))
        sign_in(page, "alice", PASSWORD)
        expect(page.locator("tr[data-device-id=bed-9]")).to_be_visible()
        (cookie,) = [c for c in context.cookies() if c["name"] == "er_session"]
        assert cookie["secure"] and cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    finally:
        context.close()
