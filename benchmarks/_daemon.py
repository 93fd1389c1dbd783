"""What the benchmarks that run the real daemon share: its surroundings (broker, emulator,
config tree), starting it on mock pins with an sd_notify socket, waiting for READY, and
reading its CPU time and memory from /proc (also for the dashboard benchmark's server)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shlex
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from devtools.demo.procs import ChildProcess, spawn
from devtools.demo.services import NotifyReceiver
from edge_recorder.dashboard.broker import Broker

if TYPE_CHECKING:
    from devtools.emulators.aas.app import Emulator


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
    """On-CPU seconds per live thread, keyed "name/tid" (the kernel's name: the daemon names
    its threads, edge_recorder/support/threads.py); from schedstat (ns), not whole ticks."""
    out: dict[str, float] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError, ValueError, IndexError):
            name = task.joinpath("comm").read_text().strip()
            ns = int(task.joinpath("schedstat").read_text().split()[0])
            out[f"{name}/{task.name}"] = ns / 1e9
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


@dataclass
class Rig:
    """The daemon's surroundings for one benchmark case: a mosquitto, the AAS emulator in
    this process (so its CPU is not charged to the daemon), and the device's config tree."""

    emulator: Emulator
    broker: Broker | None
    short: Path  # a short directory for the sockets (AF_UNIX paths are at most 107 bytes)
    tree: dict[str, Any]


async def start_rig(
    stack: contextlib.AsyncExitStack, run_dir: Path, device_id: str, *, mqtt: bool = True
) -> Rig:
    """Broker, emulator and a device config tree pointed at both (mock pins, logfmt logs, a
    spool and control socket of its own); everything is stopped with `stack`. The emulator
    is stopped last-in-first-out like the rest; a case may stop it early (offline)."""
    from devtools.emulators.aas.app import Emulator
    from devtools.emulators.aas.device_config import device_sections
    from devtools.emulators.aas.settings import EmulatorSettings

    short = Path(tempfile.mkdtemp(prefix="er-bench-"))
    stack.callback(shutil.rmtree, short, ignore_errors=True)
    broker = None
    if mqtt:
        broker = Broker(run_dir / "mosquitto", detach=True)  # dies with this process
        broker.start()
        stack.callback(broker.stop)
    emulator = Emulator(EmulatorSettings(data_dir=run_dir / "service"))
    await emulator.start()
    stack.push_async_callback(emulator.stop)
    secret = run_dir / "client-secret"
    secret.write_text(emulator.settings.client_secret + "\n")
    tree = device_sections(emulator, secret)
    tree.update(
        device={"id": device_id},
        spool={"dir": str(run_dir / "spool"), "key_file": str(run_dir / "spool.key")},
        panel={"pin_factory": "mock"},
        control={"socket": str(short / "ctl.sock")},
        log={"level": "INFO", "format": "logfmt"},
    )
    if broker is not None:
        tree["mqtt"] = {
            "host": "127.0.0.1",
            "port": broker.port,
            "birth_seq_file": str(run_dir / "birth-seq"),
        }
    return Rig(emulator, broker, short, tree)


def start_probe(command: str, pid: int, seconds: float) -> subprocess.Popen[bytes]:
    """Start `command` ({pid} and {seconds} substituted) for a measuring window, e.g.
    `py-spy record -r 250 -d {seconds} -p {pid} --threads -f raw -o out.txt`."""
    argv = shlex.split(command.format(pid=pid, seconds=int(seconds)))
    return subprocess.Popen(argv)
