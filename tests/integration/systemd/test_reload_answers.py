"""Reloading the real daemon with a config that is not valid: SIGHUP (`systemctl reload`), the
`reload` command over the control socket and over MQTT.

The running config stays, the answer says "no" with the problem (before: `ok: true` and the
change silently ignored), and nothing logs the file's text (before: a config that was not
UTF-8 put the whole file into the journal through "Task exception was never retrieved").
"""

from __future__ import annotations

import asyncio
import json
import shutil
import signal
import tempfile
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import tomli_w

from tests.integration.daemon.conftest import DaemonProcess
from tests.support.helpers import wait_for
from tests.support.mosquitto import Collector, Mosquitto

from .conftest import NotifySocket

MARKER = "Room-Marker-5e1d"  # the file's text: must never reach a log or an answer


@pytest.fixture
def place() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="er-rl-"))  # short: the control socket's path
    yield path
    shutil.rmtree(path, ignore_errors=True)


def tree(place: Path, **sections: dict[str, Any]) -> dict[str, Any]:
    config: dict[str, Any] = {
        "device": {"id": "room-4", "location": MARKER},
        "audio": {"source": "synthetic"},
        "vad": {"engine": "energy"},
        "spool": {"dir": str(place / "spool"), "key_file": str(place / "spool.key")},
        "control": {"socket": str(place / "ctl.sock")},
        "panel": {"pin_factory": "mock"},
        "log": {"level": "INFO", "format": "logfmt"},
    }
    for name, values in sections.items():
        config.setdefault(name, {}).update(values)
    return config


def write(path: Path, config: dict[str, Any]) -> Path:
    path.write_text(tomli_w.dumps(config))
    return path


def break_encoding(path: Path) -> None:
    """What an editor saving Latin-1 does: `Zürich` as the single byte 0xfc."""
    path.write_bytes(path.read_bytes().replace(MARKER.encode(), b"Z\xfcrich " + MARKER.encode()))


@pytest.fixture
async def started(place: Path) -> AsyncIterator[Callable[..., Any]]:
    """`await started(config_tree)` → a ready daemon (stopped at teardown)."""
    running: list[tuple[DaemonProcess, NotifySocket, asyncio.Task[None]]] = []

    async def start(config: dict[str, Any]) -> DaemonProcess:
        notify = NotifySocket()
        daemon = DaemonProcess(write(place / "config.toml", config), notify, place / "log")
        pump = asyncio.get_running_loop().create_task(daemon.pump_notify())
        running.append((daemon, notify, pump))
        await daemon.start()
        await daemon.ready()
        return daemon

    yield start
    for daemon, notify, pump in running:
        await daemon.stop()
        pump.cancel()
        await asyncio.gather(pump, return_exceptions=True)
        notify.close()


def assert_log_is_clean(daemon: DaemonProcess) -> None:
    log = daemon.log
    assert MARKER not in log
    assert "Traceback" not in log and "Task exception was never retrieved" not in log


async def test_ctl_reload_of_a_file_that_is_not_utf8_is_refused_with_the_reason(
    started: Callable[..., Any], place: Path
) -> None:
    daemon: DaemonProcess = await started(tree(place))
    break_encoding(daemon.config)
    reply = await daemon.request({"cmd": "reload"})
    assert reply["ok"] is False and reply["code"] == "invalid_config", reply
    assert "not UTF-8 text (byte 0xfc at line 3, column" in reply["error"]
    assert "running config kept" in reply["error"] and MARKER not in reply["error"]
    assert (await daemon.status())["state"] == "idle"  # still serving
    await wait_for(
        lambda: _has(daemon, "config reload rejected; keeping the running config"),
        what="the refusal in the log",
    )
    assert_log_is_clean(daemon)


async def test_ctl_reload_applies_a_good_config_and_refuses_a_bad_one(
    started: Callable[..., Any], place: Path
) -> None:
    config = tree(place)
    daemon: DaemonProcess = await started(config)
    code, _, err = await daemon.ctl("start")
    assert code == 0, err
    write(daemon.config, tree(place, vad={"engine": "psychic"}))
    reply = await daemon.request({"cmd": "reload"})
    assert reply["ok"] is False and "vad.engine" in reply["error"], reply
    assert reply["state"] == "recording"

    write(daemon.config, tree(place, log={"level": "DEBUG"}))
    reply = await daemon.request({"cmd": "reload"})
    assert reply["ok"] is True and reply["data"] == {"reload": True}, reply
    await wait_for(lambda: _has(daemon, 'msg="config reloaded" changed=log'), what="reload")
    assert (await daemon.status())["state"] == "recording"  # the same encounter throughout
    assert_log_is_clean(daemon)


async def test_sighup_with_a_file_that_is_not_utf8_logs_the_position_not_the_text(
    started: Callable[..., Any], place: Path
) -> None:
    daemon: DaemonProcess = await started(tree(place))
    break_encoding(daemon.config)
    await daemon.signal(signal.SIGHUP)
    await wait_for(lambda: _has(daemon, "config reload rejected"), what="the refusal")
    rejected = daemon.log.split("config reload rejected", 1)[1].splitlines()[0]
    assert "not UTF-8 text (byte 0xfc at line 3, column" in rejected
    reloads = [i for i, f in enumerate(daemon.notified()) if f.get("RELOADING") == "1"]
    await daemon.wait_notify(lambda f: f.get("READY") == "1", after=reloads[-1])
    assert (await daemon.status())["state"] == "idle"
    assert_log_is_clean(daemon)


async def test_mqtt_reload_of_an_invalid_config_answers_ok_false(
    started: Callable[..., Any],
    place: Path,
    mosquitto_broker: Mosquitto,
    mqtt_collector: Callable[..., Collector],
) -> None:
    mqtt = {
        "host": mosquitto_broker.host,
        "port": mosquitto_broker.port,
        "birth_seq_file": str(place / "birth-seq"),
    }
    base = "edge-recorder/room-4"
    seen = mqtt_collector(mosquitto_broker, [f"{base}/#"])
    daemon: DaemonProcess = await started(tree(place, mqtt=mqtt))
    await seen.await_for(lambda m: m.topic == f"{base}/availability")
    break_encoding(daemon.config)
    seen.publish(f"{base}/cmd/reload", json.dumps({"request_id": "r-1"}))
    answer = await seen.await_for(
        lambda m: m.topic == f"{base}/cmd/response" and m.json().get("request_id") == "r-1"
    )
    reply = answer.json()
    assert reply["ok"] is False and "not UTF-8 text" in json.dumps(reply), reply
    assert MARKER not in answer.payload.decode(errors="replace")
    assert_log_is_clean(daemon)


async def _has(daemon: DaemonProcess, text: str) -> bool:
    return text in daemon.log
