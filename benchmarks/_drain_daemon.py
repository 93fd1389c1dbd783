"""One drain case of bench_drain: the real daemon delivers a spooled backlog to the emulator.

Set-up: the emulator (this process, fixed loopback ports) writes the device config and is
stopped, so its ports refuse connections: an outage. The backlog is written straight into the
device's spool through the real Spool (fsync skipped: set-up, not measured). The real
`edge-recorder run` starts on that spool (synthetic microphone, mock GPIO, no MQTT), finds the
service unreachable and backs off. Then the emulator starts again on the same ports (the
network is back) and this process watches the emulator's store until every encounter was
handed to processing (StartProcessing).

The two sides are separate processes, so CPU is per process: the daemon's utime + stime
(/proc/<pid>/stat, all threads, exited ones too) and this process's (the emulator: its event
loop and gRPC threads; the harness only awaits an event the store hooks set). Peak RSS of the
device is the daemon's VmHWM (start-up included: the honest peak); its VmRSS just before the
network came back is kept beside it as the idle baseline.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import resource
import shutil
import socket
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks._daemon import cpu_seconds, start_daemon, status_kb
from devtools.demo.services import write_toml
from edge_recorder.config.model import SpoolConfig
from edge_recorder.spool.fileops import OsFileOps

# The emulator's gRPC server lives in this process while it forks the daemon (see bench_daemon)
os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")

RATE = 16000
BYTES_PER_S = RATE * 2
CHUNK = BYTES_PER_S // 10  # 100 ms, as capture appends
OFFLINE_SETTLE_S = 3.0  # the daemon has tried, failed and backed off before the network returns
DRAIN_LIMIT_S = 1800.0


class _NoSync(OsFileOps):
    """Filling the backlog is set-up: durability is not what is measured."""

    def fsync(self, fd: int) -> None:
        return None


@dataclass(frozen=True)
class Backlog:
    """What to spool: `encounters` closed recordings of `seconds` each, one per encounter;
    `live` marks them as opened on gRPC (finished by resume) instead of REST uploads."""

    encounters: int
    seconds: float
    live: bool

    @property
    def audio_s(self) -> float:
        return self.encounters * self.seconds


def fill(spool_section: dict[str, Any], backlog: Backlog) -> tuple[list[str], str]:
    """Write the backlog through the real Spool; returns the encounter ids, oldest first, and
    the sha256 every recording has (each is the same bytes)."""
    from edge_recorder.delivery.state import DeliveryState
    from edge_recorder.spool import Spool

    block = np.random.default_rng(7).integers(0, 256, CHUNK * 100, dtype=np.uint8).tobytes()
    total = int(backlog.seconds * BYTES_PER_S)
    spool = Spool.open(SpoolConfig.model_validate(spool_section), environ={}, ops=_NoSync())
    cids: list[str] = []
    digest = hashlib.sha256()
    try:
        state = DeliveryState(spool.dir)
        for n in range(backlog.encounters):
            cid, rid = f"drain-{n:05d}-{uuid.uuid4().hex[:6]}", str(uuid.uuid4())
            writer = spool.begin_recording(cid, 1, rid, codec="pcm16", sample_rate=RATE)
            written = 0
            while written < total:
                start = written % len(block)
                piece = block[start : start + min(CHUNK, total - written)]
                writer.append(piece)
                if n == 0:
                    digest.update(piece)
                written += len(piece)
            writer.close("stopped")
            spool.end_encounter(cid)
            if backlog.live:
                state.mark_live(rid)
            cids.append(cid)
    finally:
        spool.close()
    return cids, digest.hexdigest()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class _Watch:
    """Timestamps the emulator's store hooks record (monotonic seconds)."""

    expected: int
    first_session: float | None = None
    processing: dict[str, float] = field(default_factory=dict)
    done: asyncio.Event = field(default_factory=asyncio.Event)


def _hook(store: Any, watch: _Watch) -> None:
    """Wrap the store's session upsert (the first request of the drain proper, after the
    daemon's probe found the network back) and StartProcessing (an encounter handed over)."""
    upsert: Callable[..., Any] = store.upsert_session
    start: Callable[..., Any] = store.start_processing

    def upsert_session(*args: Any, **kwargs: Any) -> Any:
        if watch.first_session is None:
            watch.first_session = time.monotonic()
        return upsert(*args, **kwargs)

    def start_processing(cid: str, keys: list[str]) -> Any:
        result = start(cid, keys)
        watch.processing.setdefault(cid, time.monotonic())
        if len(watch.processing) >= watch.expected:
            watch.done.set()
        return result

    store.upsert_session, store.start_processing = upsert_session, start_processing


def _self_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def run_case(backlog: Backlog, parent: Path | None = None) -> dict[str, Any]:
    """Spool `backlog`, start the daemon offline, bring the network back, time the drain."""
    from devtools.emulators.aas.app import Emulator
    from devtools.emulators.aas.device_config import device_sections
    from devtools.emulators.aas.settings import EmulatorSettings

    run_dir = Path(tempfile.mkdtemp(prefix="bench-drain-", dir=parent))
    short = Path(tempfile.mkdtemp(prefix="er-drain-"))
    try:
        async with contextlib.AsyncExitStack() as stack:
            settings = EmulatorSettings(
                data_dir=run_dir / "service", grpc_port=free_port(), http_port=free_port()
            )
            emulator = Emulator(settings)
            await emulator.start()
            secret = run_dir / "client-secret"
            secret.write_text(settings.client_secret + "\n")
            tree = device_sections(emulator, secret)
            await emulator.stop()  # the outage: its ports now refuse connections
            tree.update(
                device={"id": "bench-drain"},
                audio={"source": "synthetic"},
                spool={"dir": str(run_dir / "spool"), "key_file": str(run_dir / "spool.key"),
                       "reserve_free_bytes": 0, "max_bytes": "8GiB"},
                panel={"pin_factory": "mock"},
                control={"socket": str(short / "ctl.sock")},
                log={"level": "INFO", "format": "logfmt"},
            )  # fmt: skip
            fill_wall = time.monotonic()
            cids, sha = fill(tree["spool"], backlog)
            fill_s = time.monotonic() - fill_wall
            os.sync()  # ~1 GB of dirty pages from the fill must not be written back (and
            # throttle the writers) inside the measured drain
            config = write_toml(run_dir / "device.toml", tree)
            daemon = await start_daemon(stack, config, short, run_dir / "daemon.log")
            await asyncio.sleep(OFFLINE_SETTLE_S)  # let it find the outage and back off
            watch = _Watch(expected=len(cids))
            _hook(emulator.ctx.store, watch)
            idle_rss_kb = status_kb(daemon.pid, "VmRSS")
            d_cpu0, e_cpu0 = cpu_seconds(daemon.pid), _self_cpu()
            back = time.monotonic()
            await emulator.start()  # the network is back
            stack.push_async_callback(emulator.stop)
            async with asyncio.timeout(DRAIN_LIMIT_S):
                await watch.done.wait()
            end = time.monotonic()
            d_cpu, e_cpu = cpu_seconds(daemon.pid) - d_cpu0, _self_cpu() - e_cpu0
            hwm_kb = status_kb(daemon.pid, "VmHWM")
            first = watch.processing.get(cids[0])
            oldest_first = sorted(watch.processing, key=watch.processing.__getitem__) == cids
            checked = _check_bytes(emulator, cids, int(backlog.seconds * BYTES_PER_S), sha)
    finally:
        shutil.rmtree(short, ignore_errors=True)
        shutil.rmtree(run_dir, ignore_errors=True)
    start_s = watch.first_session if watch.first_session is not None else back
    drain = end - start_s
    hours = backlog.audio_s / 3600
    return {
        "encounters": backlog.encounters,
        "audio_s": backlog.audio_s,
        "fill_s": round(fill_s, 1),
        "drain_s": round(drain, 2),
        "x_realtime": round(backlog.audio_s / drain, 1),
        "device_cpu_s": round(d_cpu, 2),
        "emulator_cpu_s": round(e_cpu, 2),
        "device_cpu_s_per_h": round(d_cpu / hours, 3),
        "emulator_cpu_s_per_h": round(e_cpu / hours, 3),
        "device_peak_rss_mb": round(hwm_kb / 1024, 1),
        "device_idle_rss_mb": round(idle_rss_kb / 1024, 1),
        "network_back_to_drain_s": round(start_s - back, 2),
        "network_back_to_first_processed_s": round(first - back, 2) if first else None,
        "oldest_first": oldest_first,
        "bytes_equal": checked,
    }


def _check_bytes(emulator: Any, cids: list[str], length: int, sha: str) -> bool:
    """Every encounter's service copy has exactly the spooled length, the first and the last
    also the spooled bytes (hashing all 2,000 would only slow the harness)."""
    store = emulator.ctx.store
    for n, cid in enumerate(cids):
        keys = [k for k, r in store.sessions[cid].recordings.items() if r.state != "superseded"]
        if len(keys) != 1 or store.held(cid, keys[0]) != length:
            return False
        if n in (0, len(cids) - 1) and store.sha256(cid, keys[0]) != sha:
            return False
    return True
