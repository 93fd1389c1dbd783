"""The dashboard's identify button, end to end: headless Chromium clicks it on the device page,
`fleet serve` publishes the MQTT command, the real daemon (gpiozero mock pins) blinks its panel
and answers, and the page shows the answer. The daemon's own LED history and the dashboard's
audit log must agree with what the page says."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
from playwright.async_api import async_playwright, expect

from devtools.browser import CHROMIUM, CHROMIUM_ARGS
from edge_recorder.dashboard.config import load_dashboard_config
from tests.integration.daemon.conftest import StartDaemon, daemon_config, mqtt_section, write_config
from tests.support.dashboard import DashboardThread
from tests.support.mosquitto import Mosquitto


async def wait_json(
    url: str, check: Callable[[dict[str, Any]], bool], timeout: float = 20.0
) -> dict[str, Any]:
    """GET url until check(body) holds, or fail at the deadline (the dashboard is in open mode)."""
    deadline = time.monotonic() + timeout
    body: dict[str, Any] = {}
    async with aiohttp.ClientSession() as http:
        while time.monotonic() < deadline:
            async with http.get(url) as reply:
                body = await reply.json()
            if check(body):
                return body
            await asyncio.sleep(0.05)  # polling interval, not synchronisation
    raise AssertionError(f"timed out waiting on {url}: {body}")


async def test_identify_from_the_device_page_blinks_the_real_device(
    start_daemon: StartDaemon, tmp_path: Path, short_dir: Path, speech_wav: Path,
    mosquitto_broker: Mosquitto,
) -> None:  # fmt: skip
    mqtt = mqtt_section(mosquitto_broker, tmp_path)
    tree = daemon_config(None, tmp_path, short_dir, speech_wav, mqtt=mqtt)
    device_id = tree["device"]["id"]
    daemon = await start_daemon(write_config(tmp_path / "device.toml", tree))
    await daemon.ready()

    audit = tmp_path / "audit.log"
    cfg = load_dashboard_config(
        None,
        {
            "mqtt": {"host": mosquitto_broker.host, "port": mosquitto_broker.port},
            "http": {"host": "127.0.0.1", "port": 0},
            "history": {"path": str(tmp_path / "history.sqlite3")},
            "audit_log": str(audit),
        },
    )
    runner = await asyncio.to_thread(DashboardThread(cfg).start)
    url = runner.url
    try:
        await wait_json(
            f"{url}/api/fleet",
            lambda body: any(
                d["device_id"] == device_id and d["presence"] == "online" and d["state"] == "idle"
                for d in body["devices"]
            ),
        )
        async with async_playwright() as driver:
            browser = await driver.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = await browser.new_page()
            await page.goto(f"{url}/devices/{device_id}")
            button = page.get_by_test_id("cmd-identify")
            await expect(button).to_be_enabled()
            await button.click()
            result = page.get_by_test_id("cmd-result")
            await expect(result).to_contain_text("ok", timeout=15_000)
            shown = await result.inner_text()
            await browser.close()

        history = await daemon.request({"cmd": "sim", "led_history": True})
        assert history["ok"], history
        patterns = [pattern for _t, pattern in history["data"]["indicators"]]
        assert "identify" in patterns, patterns
        lines = [json.loads(line) for line in audit.read_text().splitlines()]
        assert [(a["device_id"], a["command"], a["outcome"]) for a in lines] == [
            (device_id, "identify", "ok")
        ]
        assert lines[0]["request_id"] in shown  # the page names the request the log records
    finally:
        await asyncio.to_thread(runner.stop)
        await daemon.stop()
