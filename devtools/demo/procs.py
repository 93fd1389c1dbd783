"""Child processes of the demo and the benchmarks: started detached, always stopped.

Each child runs in its own session (so a Ctrl-C on the terminal reaches only the demo, which
then stops the children in order: daemon first, so it seals the open recording) and dies with
the demo even if the demo is SIGKILLed (PR_SET_PDEATHSIG). `stop()` sends SIGTERM, waits,
then SIGKILLs the child's whole process group.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Any

from edge_recorder.dashboard.broker import die_with_parent


class ChildProcess:
    """One `python -m edge_recorder ...` (or any) child process."""

    def __init__(self, name: str, proc: asyncio.subprocess.Process) -> None:
        self.name = name
        self.proc = proc

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def running(self) -> bool:
        return self.proc.returncode is None

    async def stop(self, grace_s: float = 10.0) -> int | None:
        """SIGTERM, wait up to `grace_s`, then SIGKILL the process group; the exit code."""
        if self.proc.returncode is not None:
            return self.proc.returncode
        with contextlib.suppress(ProcessLookupError):
            self.proc.send_signal(signal.SIGTERM)
        try:
            return await asyncio.wait_for(self.proc.wait(), grace_s)
        except TimeoutError:
            pass
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        return await self.proc.wait()

    def kill_group(self) -> None:
        """Last resort at exit (no loop needed): SIGKILL whatever is left of the group."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)


def child_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for a child: ours without systemd's or the user's edge-recorder
    settings (the demo must not pick up a real device's config or journal)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("EDGE_RECORDER")}
    for name in ("JOURNAL_STREAM", "NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"):
        env.pop(name, None)
    env.update(extra or {})
    return env


async def spawn(
    name: str,
    args: Sequence[str],
    *,
    log: Path,
    env: Mapping[str, str] | None = None,
    stdout_pipe: bool = False,
) -> ChildProcess:
    """Start `python -m edge_recorder *args` detached; stderr (and stdout unless piped) to
    `log`."""
    log.parent.mkdir(parents=True, exist_ok=True)
    handle: IO[bytes]
    with log.open("ab") as handle:
        stdout: Any = asyncio.subprocess.PIPE if stdout_pipe else handle
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "edge_recorder",
            *args,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=stdout,
            stderr=handle,
            env=child_env(env),
            start_new_session=True,
            preexec_fn=die_with_parent,
        )
    return ChildProcess(name, proc)


def pid_alive(pid: int) -> bool:
    """True while `pid` exists and is not a zombie."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"
