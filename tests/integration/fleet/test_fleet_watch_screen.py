"""`fleet watch` with 50 devices on a real broker: fits the terminal, pages, shows a lost broker."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import signal
import struct
import subprocess
import termios
import threading

import pytest

from edge_recorder.status import DeviceStatus, MicStatus
from tests.conftest import ROOT
from tests.integration.fleet.test_fleet_watch import interruptible, publish_device, reap, watch
from tests.support.mosquitto import wait_until

MIC = MicStatus(present=True, device="hw:CARD=Array", level_dbfs=-40.0)
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def publish_fleet(watcher, count: int = 50) -> None:
    for n in range(1, count + 1):
        state = "recording" if n % 4 == 0 else "idle"
        alarms = ["spool_nearly_full_for_a_long_while"] if n % 5 == 0 else []
        status = DeviceStatus(state=state, alarms=alarms, mic=MIC)  # type: ignore[arg-type]
        will = 2 if n % 7 == 0 else None
        publish_device(watcher, f"ward-{n:03d}-long-device-name", 2, status, will=will)


def environment(columns: int, lines: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EDGE_RECORDER")}
    return env | {"COLUMNS": str(columns), "LINES": str(lines)}


def test_once_page_two_fits_100x30(mosquitto_broker, collect) -> None:
    publish_fleet(collect(mosquitto_broker))
    args = watch(mosquitto_broker, "--once", "--page", "2", "--timeout", "10")
    result = subprocess.run(
        args, cwd=ROOT, env=environment(100, 30), capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("edge-recorder fleet")
    assert lines[1].startswith("50 devices, 43 online, 7 offline")
    assert lines[-1] == "rows 27-50 of 50  page 2/2"
    assert len(lines) <= 30 and max(len(line) for line in lines) <= 100


def frames(text: str) -> list[list[str]]:
    """Complete redraws in a live watch's output (each starts with cursor-home)."""
    parts = text.split("\x1b[H")[1:-1]  # the last one may still be being written
    return [[ANSI.sub("", line) for line in part.split("\n")] for part in parts]


@pytest.mark.timeout(90)
def test_live_watch_fits_60x20_and_shows_a_lost_broker(mosquitto_broker, collect) -> None:
    publish_fleet(collect(mosquitto_broker))
    child = subprocess.Popen(
        watch(mosquitto_broker),
        cwd=ROOT,
        env=environment(60, 20),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=interruptible,
    )
    output: list[str] = []

    def read() -> None:
        assert child.stdout is not None
        for chunk in iter(lambda: child.stdout.read(1), ""):  # type: ignore[union-attr]
            output.append(chunk)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()

    def latest(predicate) -> bool:
        return any(len(f) > 3 and predicate(f) for f in frames("".join(output))[-3:])

    try:
        wait_until(lambda: latest(lambda f: f[1].startswith("50 devices")), 20, "50 devices")
        for frame in frames("".join(output)):
            assert len(frame) <= 20 and max(len(line) for line in frame) <= 60, frame
            assert frame[0].startswith("edge-recorder fleet")
        shown = next(f for f in frames("".join(output)) if f[1].startswith("50 devices"))
        assert shown[-1].startswith("rows 1-16 of 50  page 1/4")
        assert shown[3].split()[1] == "offline"  # problems first

        mosquitto_broker.stop()
        wait_until(lambda: latest(lambda f: f[2].startswith("BROKER LOST since")), 20, "banner")
        mosquitto_broker.start()
        wait_until(lambda: latest(lambda f: f[2].split()[0] == "DEVICE"), 30, "banner cleared")
        child.send_signal(signal.SIGINT)
        assert child.wait(10) == 0
    finally:
        reap(child)


@pytest.mark.timeout(90)
def test_keys_page_and_quit_on_a_terminal(mosquitto_broker, collect) -> None:
    publish_fleet(collect(mosquitto_broker))
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 100, 0, 0))
    before = termios.tcgetattr(slave)
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    child = subprocess.Popen(
        watch(mosquitto_broker), cwd=ROOT, env=env, stdin=slave, stdout=slave, stderr=slave
    )
    output: list[bytes] = []

    def read() -> None:
        while True:
            try:
                chunk = os.read(master, 4096)
            except OSError:  # the child closed the terminal
                return
            if not chunk:
                return
            output.append(chunk)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()

    def shows(text: str) -> bool:
        return text in ANSI.sub("", b"".join(output).decode(errors="replace"))

    try:
        wait_until(lambda: shows("rows 1-26 of 50  page 1/2  (space/b page, q quit)"), 20)
        assert termios.tcgetattr(slave)[3] & termios.ICANON == 0  # cbreak while watching
        os.write(master, b" ")
        wait_until(lambda: shows("rows 27-50 of 50  page 2/2"), 10, "next page")
        os.write(master, b"\x1b[5~")  # PgUp
        mark = len(b"".join(output))
        wait_until(lambda: b"page 1/2" in b"".join(output)[mark:], 10, "previous page")
        os.write(master, b"q")
        assert child.wait(10) == 0
        assert termios.tcgetattr(slave) == before  # the terminal is given back as it was
        assert b"\x1b[?1049l" in b"".join(output)  # and the alternate screen left
    finally:
        reap(child)
        os.close(slave)
        os.close(master)
