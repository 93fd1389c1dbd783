"""`edge-recorder fleet watch --once` against a real broker holding a small fleet."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
from datetime import UTC, datetime

import pytest

from edge_recorder.fleet import payloads
from edge_recorder.fleet.payloads import StatusMeta, availability_payload, status_payload
from edge_recorder.status import DeviceStatus, MicStatus
from tests.conftest import ROOT
from tests.integration.fleet.conftest import DEVICE, PREFIX
from tests.integration.fleet.fakes import FakeSystem
from tests.support.mosquitto import free_port

MIC = MicStatus(present=True, device="hw:CARD=Array", level_dbfs=-40.0)


def publish_device(watcher, device: str, seq: int, status: DeviceStatus, will: int | None) -> None:
    now = datetime.now(UTC)
    meta = StatusMeta(device, "", seq, 30.0, "5")
    body = status_payload(status, FakeSystem().collect(), meta, now)
    watcher.publish(f"{PREFIX}/{device}/status", payloads.encode(body), retain=True)
    online = availability_payload("online", seq, "connected", now)
    watcher.publish(f"{PREFIX}/{device}/availability", payloads.encode(online), retain=True)
    if will is not None:
        offline = availability_payload("offline", will, "lost", now)
        watcher.publish(f"{PREFIX}/{device}/availability", payloads.encode(offline), retain=True)


def watch(broker, *extra: str) -> list[str]:
    """The command line of `fleet watch` on `broker`'s test prefix, run as a child process."""
    return [
        sys.executable,
        "-m",
        "edge_recorder",
        "fleet",
        "watch",
        "--broker",
        broker.host,
        "--port",
        str(broker.port),
        "--prefix",
        PREFIX,
        *extra,
    ]


def interruptible() -> None:
    """preexec_fn for a child the test stops with SIGINT, as a user's Ctrl-C does: a test run
    started in the background (`make test &`, nohup) inherits SIGINT ignored, POSIX's rule
    for background jobs without job control, and Python then installs no KeyboardInterrupt
    handler in the child, which would never stop."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def reap(child: subprocess.Popen) -> None:
    """Kill a `fleet watch` that a failing test left running, and wait for it."""
    if child.poll() is None:
        child.kill()
        child.wait()


async def test_watch_once_shows_the_fleet(
    mosquitto_broker, make_config, collect, start_reporter, run_cli
) -> None:
    watcher = collect(mosquitto_broker)
    await start_reporter(make_config(mosquitto_broker))  # exam-1: the real reporter
    await watcher.await_for(lambda m: m.topic == f"{PREFIX}/{DEVICE}/status")
    publish_device(watcher, "exam-2", 3, DeviceStatus(mic=MIC), will=3)  # crashed: its will
    publish_device(
        watcher,
        "exam-3",
        9,
        DeviceStatus(state="error", alarms=["mic_missing"], mic=MicStatus(present=False)),
        will=None,
    )
    publish_device(
        watcher, "exam-4", 7, DeviceStatus(state="recording", mic=MIC), will=6
    )  # late will
    args = [
        "fleet",
        "watch",
        "--broker",
        mosquitto_broker.host,
        "--port",
        str(mosquitto_broker.port),
        "--prefix",
        PREFIX,
        "--once",
        "--timeout",
        "10",
    ]
    table = await asyncio.to_thread(run_cli, *args)
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert lines[0].startswith(f"edge-recorder fleet  {PREFIX} @ {mosquitto_broker.host}:")
    assert lines[1] == "4 devices, 3 online, 1 offline, 2 with problems, 1 recording, 1 idle"
    assert lines[2].split()[:3] == ["DEVICE", "PRESENCE", "STATE"]
    order = [line.split()[0] for line in lines[3:-1]]
    assert order == ["exam-2", "exam-3", "exam-4", "exam-1"]  # offline, error, recording, idle
    rows = {line.split()[0]: line for line in lines[3:-1]}
    assert "online" in rows["exam-1"] and "idle" in rows["exam-1"]
    assert "offline (lost)" in rows["exam-2"]
    assert "MISSING" in rows["exam-3"] and "mic_missing" in rows["exam-3"]
    assert "online" in rows["exam-4"] and "recording" in rows["exam-4"]
    assert lines[-1] == "rows 1-4 of 4"
    assert rows["exam-4"].split()[-1] == "-"  # no alerts
    assert "\x1b[" not in table.stdout

    as_json = await asyncio.to_thread(run_cli, *args, "--json")
    records = {r["device_id"]: r for r in json.loads(as_json.stdout)}
    assert records["exam-2"]["presence"] == "offline"
    assert records["exam-4"]["presence"] == "online" and records["exam-4"]["birth_seq"] == 7
    assert records["exam-3"]["alerts"] == ["mic_missing", "error"]
    assert records["exam-1"]["version"] == FakeSystem().collect().version
    assert records["exam-4"]["mic_level_dbfs"] == -40.0
    assert records["exam-4"]["at"].endswith("Z") and 0 <= records["exam-4"]["age_s"] < 60


def test_watch_reports_an_unreachable_broker(run_cli) -> None:
    result = run_cli(
        "fleet",
        "watch",
        "--broker",
        "127.0.0.1",
        "--port",
        str(free_port()),
        "--once",
        "--timeout",
        "2",
    )
    assert result.returncode == 1
    assert "cannot reach broker 127.0.0.1:" in result.stderr


def test_watch_needs_a_broker(run_cli, tmp_path) -> None:
    config = tmp_path / "config.toml"
    config.write_text('[device]\nid = "exam-9"\n')
    result = run_cli("fleet", "watch", "--config", str(config), "--once")
    assert result.returncode == 2
    assert "no broker" in result.stderr


@pytest.mark.timeout(60)
def test_live_watch_redraws_until_interrupted(mosquitto_broker, collect) -> None:
    watcher = collect(mosquitto_broker)
    publish_device(watcher, "exam-5", 2, DeviceStatus(mic=MIC), will=None)
    child = subprocess.Popen(
        watch(mosquitto_broker),
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=interruptible,
    )
    try:
        seen: list[str] = []
        assert child.stdout is not None
        for line in child.stdout:  # bounded by the test timeout
            seen.append(line)
            if line.startswith("exam-5") and "online" in line:
                break
        assert any("\x1b[2J" in line for line in seen)  # a full-screen redraw
        child.send_signal(signal.SIGINT)
        assert child.wait(10) == 0
    finally:
        reap(child)
