"""What the benchmarks that run the real daemon share: starting it on mock pins with an
sd_notify socket, waiting for READY, and reading its CPU time and memory from /proc (also
for the dashboard benchmark's server)."""

from __future__ import annotations

import asyncio
import contextlib
import os
from pathlib import Path

from devtools.demo.procs import ChildProcess, spawn
from devtools.demo.services import NotifyReceiver


def status_kb(pid: int, key: str) -> int:
    """A `VmRSS`/`VmHWM`-style line of /proc/<pid>/status, in kB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise KeyError(key)


def cpu_seconds(pid: int) -> float:
    """utime + stime of the whole process (fields 14 and 15 of /proc/<pid>/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def thread_cpu_seconds(pid: int) -> dict[str, float]:
    """CPU seconds per thread, keyed "name/tid" (which thread burns the CPU)."""
    out: dict[str, float] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):
            head, tail = task.joinpath("stat").read_text().rsplit(")", 1)
            fields = tail.split()
            ticks = int(fields[11]) + int(fields[12])
            out[f"{head.split('(', 1)[1]}/{task.name}"] = ticks / os.sysconf("SC_CLK_TCK")
    return out


async def start_daemon(
    stack: contextlib.AsyncExitStack,
    config: Path,
    short: Path,
    log: Path,
    env: dict[str, str] | None = None,
) -> ChildProcess:
    """`edge-recorder run --config config` on gpiozero mock pins, stopped with `stack`;
    returns once it sent READY=1 (the notify socket lives in the short dir `short`)."""
    notify = NotifyReceiver(short / "notify.sock", lambda _status: None)
    stack.callback(notify.close)
    daemon = await spawn(
        "daemon",
        ["run", "--config", str(config)],
        log=log,
        env={
            "GPIOZERO_PIN_FACTORY": "mock",
            "GPIOZERO_MOCK_PIN_CLASS": "mockpwmpin",
            "NOTIFY_SOCKET": str(notify.path),
            **(env or {}),
        },
    )
    stack.push_async_callback(daemon.stop)
    async with asyncio.timeout(60):
        await notify.ready.wait()
    return daemon
