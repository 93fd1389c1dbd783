"""`edge-recorder run` with `mqtt.host` set: the fleet reporter is wired to the same recorder
(real mosquitto on loopback): presence, status, events, and an MQTT `start`/`stop`."""

from __future__ import annotations

import json
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.integration.daemon.conftest import StartDaemon, daemon_config, mqtt_section, write_config
from tests.support.mosquitto import Collector, Mosquitto, Received


async def test_mqtt_presence_status_events_and_commands(
    start_daemon: StartDaemon, tmp_path: Path, short_dir: Path, speech_wav: Path,
    mosquitto_broker: Mosquitto, mqtt_collector: Callable[..., Collector],
) -> None:  # fmt: skip
    mqtt = mqtt_section(mosquitto_broker, tmp_path, status_interval_s=30.0)
    tree = daemon_config(None, tmp_path, short_dir, speech_wav, mqtt=mqtt)
    base = f"edge-recorder/{tree['device']['id']}"
    seen = mqtt_collector(mosquitto_broker, [f"{base}/#"])
    daemon = await start_daemon(write_config(tmp_path / "device.toml", tree))
    await daemon.ready()

    def on(leaf: str, **fields: Any) -> Callable[[Received], bool]:
        def match(msg: Received) -> bool:
            if msg.topic != f"{base}/{leaf}":
                return False
            body = msg.json()
            return all(body.get(k) == v for k, v in fields.items())

        return match

    await seen.await_for(on("availability", state="online"))
    await seen.await_for(on("status", state="idle"))
    seen.publish(f"{base}/cmd/start", json.dumps({"request_id": "r-1"}))
    reply = (await seen.await_for(on("cmd/response", request_id="r-1"))).json()
    assert reply["ok"] is True and reply["state"] == "recording", reply
    ref = reply["result"]["encounter_ref"]
    status = await daemon.status()
    assert status["state"] == "recording" and status["encounter_ref"] == ref
    assert status["correlation_id"] not in json.dumps([m.json() for m in seen.messages])
    await seen.await_for(on("events", type="encounter_started", encounter_ref=ref))
    await seen.await_for(on("status", state="recording", encounter_ref=ref))

    seen.publish(f"{base}/cmd/stop", json.dumps({"request_id": "r-2"}))
    assert (await seen.await_for(on("cmd/response", request_id="r-2"))).json()["ok"] is True
    await seen.await_for(on("events", type="encounter_stopped", encounter_ref=ref))
    seen.publish(f"{base}/cmd/ping", json.dumps({"request_id": "r-3"}))
    pong = (await seen.await_for(on("cmd/response", request_id="r-3"))).json()
    assert pong["ok"] is True, pong

    await daemon.signal(signal.SIGTERM)
    assert await daemon.wait_exit(10) == 0
    await seen.await_for(on("availability", state="offline"))


async def test_sigkill_of_the_daemon_publishes_its_will(
    start_daemon: StartDaemon, tmp_path: Path, short_dir: Path, speech_wav: Path,
    mosquitto_broker: Mosquitto, mqtt_collector: Callable[..., Collector],
) -> None:  # fmt: skip
    mqtt = mqtt_section(mosquitto_broker, tmp_path)
    tree = daemon_config(None, tmp_path, short_dir, speech_wav, mqtt=mqtt)
    topic = f"edge-recorder/{tree['device']['id']}/availability"
    seen = mqtt_collector(mosquitto_broker, [topic])
    daemon = await start_daemon(write_config(tmp_path / "device.toml", tree))
    await daemon.ready()
    online = (await seen.await_for(lambda m: m.json().get("state") == "online")).json()

    await daemon.signal(signal.SIGKILL)
    will = (await seen.await_for(lambda m: m.json().get("state") == "offline")).json()
    assert will["reason"] == "lost"  # the broker's Last Will, not a clean shutdown
    assert will["birth_seq"] == online["birth_seq"]  # dashboards can order it against a rebirth
