"""`edge-recorder demo` as a real process: the verdict holds, and nothing outlives it —
neither after a normal run nor after Ctrl-C / SIGTERM in the middle."""

from __future__ import annotations

import json
import os
import re
import shlex
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
ROOT = Path(__file__).resolve().parents[2]


def demo_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("EDGE_RECORDER")}


def demo_command(work_dir: Path) -> list[str]:
    return [sys.executable, "-m", "edge_recorder", "demo", "--fast", "--work-dir", str(work_dir)]


class DemoRun:
    """`python -m edge_recorder demo --fast` with its stdout collected line by line."""

    def __init__(self, work_dir: Path, *extra: str) -> None:
        self.work_dir = work_dir
        self.proc = subprocess.Popen(
            [*demo_command(work_dir), *extra],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=demo_env(),
            cwd=ROOT,
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


@pytest.fixture
def demo_keep(tmp_path: Path) -> Iterator[DemoRun]:
    run = DemoRun(tmp_path / "work", "--keep")
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


def wait_gone(pids: list[int], timeout: float = 30.0) -> list[int]:
    """The pids still alive when they are all gone or at the deadline (polled, not slept)."""
    deadline = time.monotonic() + timeout
    while (left := [pid for pid in pids if pid_alive(pid)]) and time.monotonic() < deadline:
        time.sleep(0.1)  # polling with a deadline
    return left


def test_sigint_after_the_stdout_reader_died_still_stops_everything(tmp_path: Path) -> None:
    """`demo | tee`, then Ctrl-C kills tee as well: the demo's next print fails with EPIPE,
    and that must neither stop the signal handler from cancelling the run nor the clean-up
    from stopping every child."""
    work_dir = tmp_path / "work"
    stderr = (tmp_path / "stderr.txt").open("w+")
    proc = subprocess.Popen(
        demo_command(work_dir), stdout=subprocess.PIPE, stderr=stderr, text=True, env=demo_env()
    )
    try:
        assert proc.stdout is not None
        seen = []
        for line in proc.stdout:  # the reader, like tee, until the encounter is recording
            seen.append(line)
            if "recording at 4x real time" in line:
                break
        pids = [int(pid) for pid in PID.findall("".join(seen))]
        assert len(pids) == 3, "".join(seen)  # mosquitto, emulator, daemon
        proc.stdout.close()  # the reader is gone: every later write gets EPIPE
        proc.send_signal(signal.SIGINT)
        code = proc.wait(60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert code == 130, stderr.seek(0) or stderr.read()
    assert wait_gone(pids) == []
    assert processes_mentioning(str(work_dir)) == []
    stderr.seek(0)
    assert "Traceback" not in stderr.read()


def test_keep_gives_an_endless_mic_runnable_hints_and_one_demo_per_work_dir(
    demo_keep: DemoRun,
) -> None:
    demo = demo_keep
    demo.wait_line("mic now:", timeout=200)
    demo.wait_line("ctl start --config")
    out = demo.output
    assert "VERDICT: PASS" in out
    assert 'audio.source = "synthetic"' in out
    hint = next(
        line
        for line in demo.lines
        if line.strip().endswith(
            " ctl status --config " + shlex.quote(str(demo.work_dir / "run" / "device.toml"))
        )
    )
    command = shlex.split(hint)
    script = Path(sys.executable).parent / "edge-recorder"
    assert "/" in command[0]  # a path: runnable without the virtualenv on PATH
    assert (ROOT / command[0]).resolve() == script.resolve()

    def status() -> dict[str, object]:
        done = subprocess.run(
            command, cwd=ROOT, capture_output=True, text=True, timeout=60, env=demo_env()
        )
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    # The WAV mic started with the first daemon and lasts `seconds / 4` at --fast; the keep
    # daemon must still be listening well after that (a WAV that ended is `error no_mic`).
    wav_s = float(re.search(r"speech: \S+ \(([\d.]+) s", out).group(1))
    first_start = float(re.search(r"([\d.]+)s  setup +daemon: edge-recorder run", out).group(1))
    mic_line = next(line for line in demo.lines if "mic now:" in line)
    now_offset = float(mic_line.split("s", 1)[0])
    wav_end = time.monotonic() + (first_start + wav_s / 4 - now_offset) + 3.0
    states = []
    while True:
        states.append(status()["state"])
        if time.monotonic() > wav_end:
            break
        time.sleep(0.5)  # polling with a deadline
    assert "error" not in states and states[-1] == "idle", states

    # A second demo in the same work directory says so at once and touches nothing.
    second = subprocess.run(
        demo_command(demo.work_dir), capture_output=True, text=True, timeout=60, env=demo_env()
    )
    assert second.returncode == 75, second.stdout + second.stderr
    assert f"another demo (pid {demo.proc.pid}) is running in {demo.work_dir}" in second.stdout
    assert "--work-dir" in second.stdout
    assert status()["state"] == "idle"

    demo.proc.send_signal(signal.SIGINT)
    assert demo.wait_exit(60) == 0, demo.output  # keep mode: the verdict's code
    assert_nothing_left(demo, started=4)  # mosquitto, emulator, daemon, keep's daemon
