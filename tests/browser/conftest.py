"""Browser tests: Debian's Chromium driven by Playwright against the real dashboard.

The dashboard (`edge_recorder.dashboard.serve.serve`) runs in its own thread and event loop,
connected to a real mosquitto on loopback; devices are real MQTT publishers (paho, through
`Collector`) sending schema-valid payloads, or the SimulatedFleet. The browser is started
once per session; every test gets a fresh context (no shared cookies) and fails on any
uncaught page error or Content-Security-Policy violation. Waiting is Playwright's
auto-waiting `expect(...)` or a deadline, never a sleep.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from argon2 import PasswordHasher
from playwright.sync_api import Browser, ConsoleMessage, Page, sync_playwright

from devtools.browser import CHROMIUM, CHROMIUM_ARGS
from edge_recorder.dashboard.config import DashboardConfig
from tests.support.dashboard import PREFIX, availability, event, status
from tests.support.dashboard import DashboardThread as Dashboard
from tests.support.mosquitto import Collector, Mosquitto

PASSWORD = "correct horse battery staple"


# ---------------------------------------------------------------- devices over real MQTT


class Devices:
    """Publishes device payloads to the broker as devices would (QoS 1, retained where the
    devices retain) and sees the dashboard's command requests."""

    def __init__(self, broker: Mosquitto) -> None:
        self.collector = Collector(broker.host, broker.port, [f"{PREFIX}/+/cmd/+"])

    def _topic(self, device_id: str, leaf: str) -> str:
        return f"{PREFIX}/{device_id}/{leaf}"

    def online(self, device_id: str, birth_seq: int = 42) -> None:
        body = availability("online", birth_seq)
        self.collector.publish(self._topic(device_id, "availability"), json.dumps(body), True)

    def availability(self, device_id: str, body: dict[str, Any]) -> None:
        self.collector.publish(self._topic(device_id, "availability"), json.dumps(body), True)

    def status(self, device_id: str, location: str = "Ward 1 room 1", **changes: Any) -> None:
        body = status(device_id, location, **changes)
        self.collector.publish(self._topic(device_id, "status"), json.dumps(body), True)

    def device(self, device_id: str, location: str = "Ward 1 room 1", **changes: Any) -> None:
        """An online device with a status."""
        self.online(device_id, changes.get("birth_seq", 42))
        self.status(device_id, location, **changes)

    def event(self, device_id: str, seq: int, kind: str, **changes: Any) -> None:
        body = event(device_id, seq, kind, **{"details": {}, "encounter_ref": None, **changes})
        self.collector.publish(self._topic(device_id, "events"), json.dumps(body))

    def command_request(self, device_id: str, command: str, after: int = 0) -> dict[str, Any]:
        """Wait for the dashboard's request for `command` and return its JSON."""
        topic = self._topic(device_id, f"cmd/{command}")
        message = self.collector.wait_for(lambda m: m.topic == topic, after=after)
        request: dict[str, Any] = message.json()
        return request

    def respond(self, device_id: str, body: dict[str, Any]) -> None:
        self.collector.publish(self._topic(device_id, "cmd/response"), json.dumps(body))

    def close(self) -> None:
        self.collector.close()


@pytest.fixture
def devices(mosquitto_broker: Mosquitto) -> Iterator[Devices]:
    made = Devices(mosquitto_broker)
    yield made
    made.close()


# ---------------------------------------------------------------- the dashboard


DashboardFactory = Callable[..., Dashboard]


@pytest.fixture
def dashboard_factory(tmp_path: Path, mosquitto_broker: Mosquitto) -> Iterator[DashboardFactory]:
    started: list[Dashboard] = []

    def make(users: dict[str, str] | None = None, **sections: dict[str, Any]) -> Dashboard:
        """users: {name: role}, all with PASSWORD; sections: config overrides by section."""
        raw: dict[str, dict[str, Any]] = {
            "mqtt": {"host": mosquitto_broker.host, "port": mosquitto_broker.port},
            "http": {"host": "127.0.0.1", "port": 0},
            "history": {"path": tmp_path / "history.sqlite3", "flush_s": 0.5},
            "limits": {"command_timeout_s": 2.0},
            "auth": {},
        }
        if users:
            hasher = PasswordHasher()
            users_file = tmp_path / "users"
            users_file.write_text(
                "".join(f"{name}:{role}:{hasher.hash(PASSWORD)}\n" for name, role in users.items())
            )
            users_file.chmod(0o600)
            raw["auth"]["users_file"] = users_file
        for section, values in sections.items():
            raw.setdefault(section, {}).update(values)
        cfg = DashboardConfig.model_validate({**raw, "audit_log": tmp_path / "audit.log"})
        dashboard = Dashboard(cfg)
        started.append(dashboard)
        return dashboard.start()

    yield make
    for dashboard in started:
        dashboard.stop()


# ---------------------------------------------------------------- the browser


@pytest.fixture(scope="package")
def browser() -> Iterator[Browser]:
    # Package scope, not session: Playwright's sync API runs an event loop in this thread while
    # it is open, and every asyncio test after tests/browser/ would find that loop running.
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A fresh context per test; uncaught errors and CSP violations fail the test."""
    context = browser.new_context(viewport={"width": 1366, "height": 900})
    opened = context.new_page()
    problems: list[str] = []
    opened.on("pageerror", lambda error: problems.append(f"page error: {error}"))

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error" and "Content Security Policy" in message.text:
            problems.append(f"CSP: {message.text}")

    opened.on("console", on_console)
    yield opened
    context.close()
    assert not problems, problems


def minutes_ago(minutes: float) -> datetime:
    return datetime.now(UTC) - timedelta(minutes=minutes)
