"""Availability and status: retained for late subscribers, the will on a crash, rebirth after
a broker restart, and a late will of an old session overruled."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT
from tests.integration.fleet.conftest import DEVICE, PREFIX
from tests.support.helpers import async_poll_until

AVAIL = f"{PREFIX}/{DEVICE}/availability"
STATUS = f"{PREFIX}/{DEVICE}/status"


def is_(topic: str, **fields: object):
    def match(message) -> bool:
        if message.topic != topic or not message.payload:
            return False
        body = message.json()
        return all(body.get(k) == v for k, v in fields.items())

    return match


async def test_fresh_subscriber_sees_retained_availability_and_status(
    mosquitto_broker, make_config, collect, start_reporter
) -> None:
    first = collect(mosquitto_broker)
    reporter, _ = await start_reporter(make_config(mosquitto_broker))
    await first.await_for(is_(STATUS))
    late = collect(mosquitto_broker)  # subscribes after everything was published
    online = await late.await_for(is_(AVAIL, state="online"))
    status = await late.await_for(is_(STATUS))
    assert online.retain and status.retain
    assert online.json()["birth_seq"] == status.json()["birth_seq"] == reporter.stats().birth_seq
    body = status.json()
    assert body["state"] == "idle" and body["mic"]["device"] == "plughw:CARD=Fake"
    assert body["system"]["throttled"]["under_voltage_occurred"] is True


async def test_clean_stop_publishes_offline_shutdown(
    mosquitto_broker, make_config, collect, start_reporter
) -> None:
    watcher = collect(mosquitto_broker)
    reporter, _ = await start_reporter(make_config(mosquitto_broker))
    await watcher.await_for(is_(AVAIL, state="online"))
    seq = reporter.stats().birth_seq
    await reporter.stop()
    gone = await watcher.await_for(is_(AVAIL, state="offline"))
    assert gone.json() | {"at": None} == {
        "v": 1,
        "state": "offline",
        "birth_seq": seq,
        "reason": "shutdown",
        "at": None,
    }
    assert collect(mosquitto_broker).wait_for(is_(AVAIL)).json()["state"] == "offline"


def test_sigkill_publishes_the_will(mosquitto_broker, make_config, collect, tmp_path: Path) -> None:
    config_file = tmp_path / "config.json"
    config_file.write_text(make_config(mosquitto_broker).model_dump_json())
    watcher = collect(mosquitto_broker)
    child = subprocess.Popen(
        [sys.executable, "-m", "tests.integration.fleet.reporter_child", str(config_file)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        online = watcher.wait_for(is_(AVAIL, state="online"), timeout=20)
        watcher.wait_for(is_(STATUS))
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=10)
        will = watcher.wait_for(is_(AVAIL, state="offline"), timeout=10)
    finally:
        if child.poll() is None:
            child.kill()
        child.wait(timeout=10)
    assert will.json()["reason"] == "lost"
    assert will.json()["birth_seq"] == online.json()["birth_seq"]
    retained = collect(mosquitto_broker).wait_for(is_(AVAIL))
    assert retained.retain and retained.json()["state"] == "offline"


async def test_broker_restart_device_republishes(
    mosquitto_broker, make_config, collect, start_reporter
) -> None:
    reporter, _daemon = await start_reporter(make_config(mosquitto_broker))
    before = await collect(mosquitto_broker).await_for(is_(AVAIL, state="online"))
    mosquitto_broker.restart()  # persistence false: every retained message is gone
    await async_poll_until(lambda: reporter.stats().connects >= 2, 20, "reconnect")
    fresh = collect(mosquitto_broker)
    online = await fresh.await_for(is_(AVAIL, state="online"))
    status = await fresh.await_for(is_(STATUS))
    assert online.json()["birth_seq"] > before.json()["birth_seq"]
    assert status.json()["birth_seq"] == online.json()["birth_seq"]


async def test_birth_seq_survives_a_restart(
    mosquitto_broker, make_config, collect, start_reporter
) -> None:
    config = make_config(mosquitto_broker)
    first, _ = await start_reporter(config)
    await async_poll_until(lambda: first.stats().connected, 10, "connected")
    seq = first.stats().birth_seq
    await first.stop()
    second, _ = await start_reporter(config)
    await async_poll_until(lambda: second.stats().connected, 10, "connected")
    assert second.stats().birth_seq == seq + 1
    assert config.mqtt.birth_seq_file.read_text().strip() == str(seq + 1)


async def test_stale_will_is_overruled(
    mosquitto_broker, make_config, collect, start_reporter
) -> None:
    watcher = collect(mosquitto_broker)
    config = make_config(mosquitto_broker)
    config.mqtt.birth_seq_file.write_text("5\n")  # an earlier life of this device
    reporter, _ = await start_reporter(config)
    await watcher.await_for(is_(AVAIL, state="online"))
    seq = reporter.stats().birth_seq
    assert seq == 6
    stale = {
        "v": 1,
        "state": "offline",
        "birth_seq": 5,
        "reason": "lost",
        "at": "2026-01-01T00:00:00.000Z",
    }
    mark = watcher.count()
    watcher.publish(AVAIL, json.dumps(stale), retain=True)
    back = await watcher.await_for(is_(AVAIL, state="online"), after=mark)
    assert back.json()["birth_seq"] == seq
    assert collect(mosquitto_broker).wait_for(is_(AVAIL)).json()["state"] == "online"


async def test_status_on_change_and_on_interval(
    mosquitto_broker, make_config, collect, start_reporter
) -> None:
    watcher = collect(mosquitto_broker)
    reporter, daemon = await start_reporter(make_config(mosquitto_broker, status_interval_s=0.3))
    await watcher.await_for(is_(STATUS, state="idle"))
    daemon.fail_mic()
    reporter.status_changed()
    changed = await watcher.await_for(is_(STATUS, alarms=["mic_missing"]))
    assert changed.json()["mic"]["present"] is False
    assert changed.json()["last_error"]["code"] == "mic_missing"
    mark = watcher.count()
    for _ in range(3):  # unchanged state is still republished every interval
        got = await watcher.await_for(is_(STATUS), after=mark)
        mark = watcher.messages.index(got) + 1
