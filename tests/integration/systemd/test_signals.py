"""Real signals to a real child process: SIGHUP reloads, SIGTERM stops with STOPPING=1 and exit 0,
and a hung capture thread silences the watchdog, as systemd would see it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import NotifySocket

CHILD = Path(__file__).with_name("notify_child.py")
REPO = Path(__file__).resolve().parents[3]


@pytest.fixture
def child(notify_socket: NotifySocket) -> Iterator[subprocess.Popen[str]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WATCHDOG_", "EDGE_"))}
    env.update(
        NOTIFY_SOCKET=notify_socket.address,
        WATCHDOG_USEC="200000",
        PYTHONPATH=str(REPO),
    )
    env.pop("JOURNAL_STREAM", None)
    proc = subprocess.Popen(
        [sys.executable, str(CHILD)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=10)


def test_ready_reload_and_graceful_stop(
    child: subprocess.Popen[str], notify_socket: NotifySocket
) -> None:
    ready = notify_socket.wait_for(lambda f: "READY" in f, timeout=30)
    assert ready == {"READY": "1", "STATUS": "idle; backlog 0 rec / 0 B; offline"}
    notify_socket.wait_for(lambda f: f.get("WATCHDOG") == "1")

    child.send_signal(signal.SIGHUP)
    reloading = notify_socket.wait_for(lambda f: "RELOADING" in f)
    assert reloading["RELOADING"] == "1" and int(reloading["MONOTONIC_USEC"]) > 0
    assert notify_socket.wait_for(lambda f: "READY" in f) == {"READY": "1"}
    assert child.stdout is not None
    assert child.stdout.readline() == "reloaded\n"

    child.send_signal(signal.SIGTERM)
    stopping = notify_socket.wait_for(lambda f: "STOPPING" in f)
    assert stopping == {"STOPPING": "1", "STATUS": "stopping"}
    assert child.wait(timeout=10) == 0
    final = notify_socket.wait_for(lambda f: "STATUS" in f and "STOPPING" not in f)
    assert final == {"STATUS": "recording closed (shutdown); spool flushed"}


def test_hung_capture_thread_silences_the_watchdog(
    child: subprocess.Popen[str], notify_socket: NotifySocket
) -> None:
    notify_socket.wait_for(lambda f: "READY" in f, timeout=30)
    for _ in range(3):
        notify_socket.wait_for(lambda f: f.get("WATCHDOG") == "1")

    child.send_signal(signal.SIGUSR1)  # the capture thread blocks for good
    notify_socket.wait_for(lambda f: f.get("STATUS", "").startswith("watchdog withheld: capture"))
    # From the withholding decision on, no ping for 5 watchdog timeouts (1 s).
    end = time.monotonic() + 1.0
    while (left := end - time.monotonic()) > 0:
        fields = notify_socket.recv(left)
        assert fields is None or "WATCHDOG" not in fields, "pinged with a hung capture thread"
    assert child.poll() is None  # alive but silent: systemd's watchdog would now kill it

    child.send_signal(signal.SIGTERM)  # the stop path still works with the thread hung
    notify_socket.wait_for(lambda f: "STOPPING" in f)
    assert child.wait(timeout=10) == 0
    assert child.stderr is not None
    assert "watchdog ping withheld" in child.stderr.read()
