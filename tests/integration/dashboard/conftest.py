"""A real dashboard (`serve()` in its own thread and loop) against a real mosquitto.

`dashboard_factory(**overrides)` starts one with config overrides (`{"auth": {...}}`), waits
until it listens and its MQTT subscription is in place (/healthz answers ok), and stops it at
the end. `Publisher` sends schema-valid device messages built from the schemas' examples.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from edge_recorder.dashboard.config import DashboardConfig, load_dashboard_config
from tests.support.dashboard import (
    PREFIX,
    DashboardThread,
    availability,
    status,
)
from tests.support.mosquitto import Mosquitto, wait_until


class Publisher:
    """A paho client publishing as devices would (QoS 1, waiting for the broker's ack)."""

    def __init__(self, host: str, port: int, prefix: str = PREFIX) -> None:
        self.prefix = prefix
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"pub-{uuid.uuid4().hex}")
        self.client.connect(host, port)
        self.client.loop_start()

    def raw(self, topic: str, payload: bytes | str, retain: bool = False) -> None:
        info = self.client.publish(topic, payload, qos=1, retain=retain)
        info.wait_for_publish(timeout=10)

    def send(self, device_id: str, leaf: str, body: dict[str, Any], retain: bool = False) -> None:
        self.raw(f"{self.prefix}/{device_id}/{leaf}", json.dumps(body), retain=retain)

    def device(self, device_id: str, **status_changes: Any) -> None:
        """An online device with a status (both retained, as a real one publishes them)."""
        self.send(device_id, "availability", availability(), retain=True)
        self.send(device_id, "status", status(device_id, **status_changes), retain=True)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@dataclass
class Dashboard:
    """A running dashboard (`runner`), the broker it reads and a device-side publisher."""

    runner: DashboardThread
    broker: Mosquitto
    publisher: Publisher
    ssl_context: ssl.SSLContext | None = None

    @property
    def url(self) -> str:
        return self.runner.url

    @property
    def cfg(self) -> DashboardConfig:
        return self.runner.cfg

    def stop(self) -> int | None:
        """Stop it as SIGTERM would; serve()'s exit code."""
        return self.runner.stop()

    def session(self, **options: Any) -> aiohttp.ClientSession:
        connector = aiohttp.TCPConnector(ssl=self.ssl_context) if self.ssl_context else None
        options.setdefault("cookie_jar", aiohttp.CookieJar(unsafe=True))  # cookies for 127.0.0.1
        return aiohttp.ClientSession(self.url, connector=connector, **options)


def healthz_ok(url: str, ssl_context: ssl.SSLContext | None = None) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/healthz", timeout=2, context=ssl_context) as reply:
            return bool(reply.status == 200)
    except (urllib.error.URLError, OSError):
        return False


DashboardFactory = Callable[..., Dashboard]


@pytest.fixture
def dashboard_factory(mosquitto_broker: Mosquitto, tmp_path: Path) -> Iterator[DashboardFactory]:
    made: list[Dashboard] = []

    def make(ssl_context: ssl.SSLContext | None = None, **overrides: Any) -> Dashboard:
        index = len(made)
        base: dict[str, Any] = {
            "mqtt": {"host": mosquitto_broker.host, "port": mosquitto_broker.port},
            "http": {"host": "127.0.0.1", "port": 0},
            "history": {
                "path": str(tmp_path / f"history-{index}.sqlite3"),
                "flush_s": 0.2,
                "sample_s": 1,
            },
            "limits": {"command_timeout_s": 1.0},
            "audit_log": str(tmp_path / f"audit-{index}.log"),
        }
        for key, value in overrides.items():
            base[key] = {**base.get(key, {}), **value} if isinstance(value, dict) else value
        runner = DashboardThread(load_dashboard_config(None, base)).start()
        publisher = Publisher(mosquitto_broker.host, mosquitto_broker.port)
        dash = Dashboard(runner, mosquitto_broker, publisher, ssl_context)
        made.append(dash)
        wait_until(
            lambda: healthz_ok(runner.url, ssl_context), 15, "dashboard subscribed to the broker"
        )
        return dash

    yield make
    for dash in made:
        dash.publisher.close()
        dash.stop()


@pytest.fixture
def dashboard(dashboard_factory: DashboardFactory) -> Dashboard:
    return dashboard_factory()


async def eventually(probe: Callable[[], Any], timeout: float = 10.0, what: str = "") -> Any:
    """Await `probe()` (a coroutine function) until it returns something truthy, or fail."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = await probe()
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what or probe}")
        await asyncio.sleep(0.02)  # polling with a deadline, not synchronisation


async def device_detail(session: aiohttp.ClientSession, device_id: str) -> Any:
    """/api/devices/<id>, or None while the dashboard has not seen the device yet (404)."""
    async with session.get(f"/api/devices/{device_id}") as reply:
        if reply.status == 404:
            return None
        assert reply.status == 200, (device_id, reply.status, await reply.text())
        return await reply.json()


async def get_json(session: aiohttp.ClientSession, path: str) -> Any:
    async with session.get(path) as reply:
        assert reply.status == 200, (path, reply.status, await reply.text())
        return await reply.json()


async def fleet_has(
    session: aiohttp.ClientSession, predicate: Callable[[dict[str, Any]], bool]
) -> Any:
    """The /api/fleet payload once `predicate(payload)` holds."""

    async def probe() -> Any:
        payload = await get_json(session, "/api/fleet")
        return payload if predicate(payload) else None

    return await eventually(probe, what="fleet condition")


def device_ids(payload: dict[str, Any]) -> list[str]:
    return [row["device_id"] for row in payload["devices"]]
