"""What the benchmarks that run the real daemon share: starting it on mock pins with an
sd_notify socket, waiting for READY, and reading its memory from /proc."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

from devtools.demo.procs import ChildProcess, spawn
from devtools.demo.services import NotifyReceiver


def status_kb(pid: int, key: str) -> int:
    """A `VmRSS`/`VmHWM`-style line of /proc/<pid>/status, in kB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise KeyError(key)


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
