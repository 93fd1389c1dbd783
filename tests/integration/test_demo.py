"""`edge-recorder demo` as a real process: the verdict holds, and nothing outlives it —
neither after a normal run nor after Ctrl-C / SIGTERM in the middle."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
import wave
from collections.abc import Iterator
from pathlib import Path

import pytest

from devtools.demo.procs import pid_alive

pytestmark = pytest.mark.timeout(300)

PID = re.compile(r"\(pid (\d+)")


class DemoRun:
    """`python -m edge_recorder demo --fast` with its stdout collected line by line."""

    def __init__(self, work_dir: Path) -> None:
        self.work_dir = work_dir
        env = {k: v for k, v in os.environ.items() if not k.startswith("EDGE_RECORDER")}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "edge_recorder", "demo", "--fast", "--work-dir", str(work_dir)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
        )
        self.lines: list[str] = []
        self._cond = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with self._cond:
                self.lines.append(line.rstrip("\n"))
                self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    @property
    def output(self) -> str:
        with self._cond:
            return "\n".join(self.lines)

    def wait_line(self, text: str, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        with self._cond:
            while not any(text in line for line in self.lines):
                left = deadline - time.monotonic()
                if left <= 0 or self.proc.poll() is not None:
                    raise AssertionError(f"no line with {text!r}; output:\n{self.output}")
                self._cond.wait(min(left, 0.5))

    def wait_exit(self, timeout: float = 240.0) -> int:
        code = self.proc.wait(timeout)
        self._reader.join(10)
        return code

    def child_pids(self) -> list[int]:
        return [int(pid) for pid in PID.findall(self.output)]

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def processes_mentioning(text: str) -> list[int]:
    """Live processes whose command line mentions `text` (the demo's work dir)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if text in cmdline and pid_alive(int(entry.name)):
            found.append(int(entry.name))
    return found


def assert_nothing_left(run: DemoRun, started: int) -> None:
    pids = run.child_pids()
    assert len(pids) >= started, run.output
    assert [pid for pid in pids if pid_alive(pid)] == []
    assert processes_mentioning(str(run.work_dir)) == []
    assert "all child processes are gone" in run.output


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[DemoRun]:
    run = DemoRun(tmp_path / "work")
    yield run
    run.kill()


def test_demo_fast_delivers_every_recording_exactly_and_cleans_up(demo: DemoRun) -> None:
    code = demo.wait_exit()
    out = demo.output
    assert code == 0, out
    assert "VERDICT: PASS" in out
    assert "network to the service CUT" in out and "network RESTORED" in out
    assert "processing started: yes" in out
    matches = re.findall(r"recording #(\d+) \S+ \(closed: (\w+), service: finalized\): MATCH", out)
    assert [seq for seq, _ in matches] == ["1", "2"], out  # paused offline, then resumed
    assert [reason for _, reason in matches] == ["pause", "stop"]
    devices = re.findall(r"device +(\d+) bytes  sha256 (\w+)", out)
    services = re.findall(r"service +(\d+) bytes  sha256 (\w+)", out)
    assert devices == services and len(devices) == 2
    for listen in re.findall(r"listen: (\S+\.wav)", out):  # the WAVs one can listen to
        with wave.open(listen) as wav:
            assert wav.getframerate() == 16000
            assert wav.getnframes() * 2 in {int(n) for n, _ in devices}
    assert re.search(r"led +recording", out) and re.search(r"led +paused", out)
    assert "mqtt      event encounter_started" in out
    assert_nothing_left(demo, started=3)  # mosquitto, emulator, daemon


@pytest.mark.parametrize(
    ("signum", "when"),
    [
        (signal.SIGINT, "recording at 4x real time"),  # mid-encounter, audio streaming
        (signal.SIGTERM, "fault proxies:"),  # mid-setup, before the daemon exists
    ],
)
def test_a_signal_midway_leaves_nothing_running(
    demo: DemoRun, signum: signal.Signals, when: str
) -> None:
    demo.wait_line(when)
    demo.proc.send_signal(signum)
    code = demo.wait_exit(60)
    assert code == 128 + signum, demo.output
    assert f"{signum.name}: stopping everything" in demo.output
    assert "VERDICT" not in demo.output
    assert_nothing_left(demo, started=2 if signum == signal.SIGTERM else 3)
