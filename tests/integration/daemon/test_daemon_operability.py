"""Operability of the real daemon: problems an operator must see for what they are.

- a service config that cannot deliver (no endpoint) records, but says so everywhere: the
  `delivery_disabled` alarm in `ctl status` and on MQTT, the LED's error pattern (not the
  normal backlog blink);
- the spool directory vanishing under a recording is a storage fault, named as such, logged
  once, not a "no mic" and not a traceback a second.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.integration.daemon.conftest import StartDaemon, daemon_config, mqtt_section, write_config
from tests.support.helpers import wait_for
from tests.support.mosquitto import Collector, Mosquitto, Received


async def indicators(daemon: Any) -> list[str]:
    """The patterns the panel was told to show, oldest first (mock pins, panel simulation)."""
    reply = await daemon.request({"cmd": "sim", "led_history": True})
    assert reply["ok"], reply
    return [name for _, name in reply["data"]["indicators"]]


async def test_a_config_that_cannot_deliver_is_an_alarm_everywhere_and_recording_goes_on(
    start_daemon: StartDaemon, tmp_path: Path, short_dir: Path, speech_wav: Path,
    mosquitto_broker: Mosquitto, mqtt_collector: Callable[..., Collector],
) -> None:  # fmt: skip
    mqtt = mqtt_section(mosquitto_broker, tmp_path)
    tree = daemon_config(None, tmp_path, short_dir, speech_wav, mqtt=mqtt)
    del tree["aas"], tree["auth"]  # what config.example.toml ships: no endpoint at all
    base = f"edge-recorder/{tree['device']['id']}"
    seen = mqtt_collector(mosquitto_broker, [f"{base}/status"])
    daemon = await start_daemon(write_config(tmp_path / "device.toml", tree))
    await daemon.ready()

    async def alarmed() -> bool:
        return "delivery_disabled" in (await daemon.status())["alarms"]

    await wait_for(alarmed, what="the delivery_disabled alarm")
    status = await daemon.status()
    assert status["state"] == "idle"
    assert status["error"]["code"] == "delivery_config", status["error"]

    def published(msg: Received) -> bool:
        body = msg.json()
        return "delivery_disabled" in body.get("alarms", []) and body.get("error") is not None

    on_mqtt = (await seen.await_for(published)).json()
    assert on_mqtt["error"]["code"] == "delivery_config"
    assert (await indicators(daemon))[-1] == "error"  # not "offline_buffering"/"idle"

    code, _, err = await daemon.ctl("start")  # allowed: the audio waits in the spool
    assert code == 0, err
    recording = await daemon.wait_state("recording")
    assert "delivery_disabled" in recording["alarms"]

    async def overlay() -> bool:
        return (await indicators(daemon))[-1] == "recording_alarm"

    await wait_for(overlay, what="the recording alarm overlay")
    code, _, err = await daemon.ctl("stop")
    assert code == 0, err
    await daemon.wait_state("idle")

    async def backlog_kept() -> bool:
        status = await daemon.status()
        return bool(status["backlog"]["recordings"] >= 1)

    await wait_for(backlog_kept, what="the recording kept in the spool")
    assert (await indicators(daemon))[-1] == "error"  # idle with a backlog: still the error


async def test_the_spool_directory_vanishing_is_a_storage_fault_logged_once(
    start_daemon: StartDaemon, tmp_path: Path, short_dir: Path, speech_wav: Path
) -> None:
    tree = daemon_config(None, tmp_path, short_dir, speech_wav)
    daemon = await start_daemon(write_config(tmp_path / "device.toml", tree))
    await daemon.ready()
    code, _, err = await daemon.ctl("start")
    assert code == 0, err
    await daemon.wait_state("recording")

    async def recorded() -> bool:
        return bool((await daemon.status())["backlog"]["bytes"] > 0)

    await wait_for(recorded, what="audio in the spool")
    shutil.rmtree(tmp_path / "spool")

    async def faulted() -> bool:
        status = await daemon.status()
        return status["state"] == "error" or "storage_error" in status["alarms"]

    await wait_for(faulted, what="the storage fault")
    status = await daemon.status()
    assert status["error_reason"] == "storage_error", status
    assert "storage_error" in status["alarms"] and "no_mic" not in status["alarms"], status
    assert status["mic"]["present"], status["mic"]  # the mic is fine: it is the storage
    faulted_at = status["encounter_elapsed_s"]

    async def ticks_later() -> bool:  # several health checks (one a second) on the daemon's clock
        return bool((await daemon.status())["encounter_elapsed_s"] > faulted_at + 3.5)

    await wait_for(ticks_later, what="three more health checks")
    log = daemon.log
    assert log.count('msg="spool storage fault') == 1, log[-3000:]  # once, on change
    assert "Traceback" not in log and 'msg="health check failed"' not in log, log[-3000:]
    assert "audio worker crashed" not in log
    assert (await daemon.status())["error_reason"] == "storage_error"
