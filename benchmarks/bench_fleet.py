"""Fleet MQTT costs against a real mosquitto on loopback: what the daemon pays per event,
what a dashboard waits for a command answer, and how fast a crash shows as `offline`."""

from __future__ import annotations

import asyncio
import json
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from edge_recorder.config.model import Config
from edge_recorder.fleet import payloads
from edge_recorder.fleet.reporter import FleetReporter
from edge_recorder.fleet.sysinfo import SystemInfo
from tests.integration.fleet.fakes import FakeDaemon, FakeSystem
from tests.support.mosquitto import Collector, Mosquitto, free_port

ROOT = Path(__file__).resolve().parent.parent
PREFIX, DEVICE = "bench", "exam-1"


def _config(port: int, tmp: Path) -> Config:
    return Config.model_validate(
        {
            "device": {"id": DEVICE},
            "spool": {"dir": str(tmp / "spool")},
            "mqtt": {
                "host": "127.0.0.1",
                "port": port,
                "topic_prefix": PREFIX,
                "birth_seq_file": str(tmp / "birth"),
                "queue_max": 1000,
                # the benchmark measures round trips, not the flood guard: lift the limit
                "command_rate_per_s": 1000,
                "command_burst": 1000,
            },
        }
    )


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def _event_cost(tmp: Path, calls: int) -> list[float]:
    """µs per `reporter.event()` while the broker is gone (the worst case for the caller)."""
    daemon = FakeDaemon()
    reporter = FleetReporter(_config(free_port(), tmp), daemon.status, daemon, system=FakeSystem())
    await reporter.start()
    costs = []
    for n in range(calls):
        start = time.perf_counter()
        reporter.event("alarm", code="bench", n=n)
        costs.append((time.perf_counter() - start) * 1e6)
    await reporter.stop(timeout_s=2)
    return costs


def _status_cost(calls: int) -> list[float]:
    status, info = FakeDaemon().status(), SystemInfo()
    meta = payloads.StatusMeta(DEVICE, "", 1, 30.0, "5")
    costs = []
    for _ in range(calls):
        start = time.perf_counter()
        payloads.encode(payloads.status_payload(status, info, meta, datetime.now(UTC)))
        costs.append((time.perf_counter() - start) * 1e6)
    return costs


async def _round_trips(broker: Mosquitto, tmp: Path, count: int) -> list[float]:
    watcher = Collector(broker.host, broker.port, [f"{PREFIX}/{DEVICE}/#"])
    daemon = FakeDaemon()
    reporter = FleetReporter(_config(broker.port, tmp), daemon.status, daemon, system=FakeSystem())
    await reporter.start()
    await watcher.await_for(lambda m: m.topic.endswith("/availability"))
    times = []
    for n in range(count):
        mark = watcher.count()
        start = time.perf_counter()
        watcher.client.publish(f"{PREFIX}/{DEVICE}/cmd/ping", json.dumps({"request_id": f"b{n}"}))
        await watcher.await_for(lambda m: m.topic.endswith("/cmd/response"), after=mark)
        times.append((time.perf_counter() - start) * 1000)
    await reporter.stop()
    watcher.close()
    return times


def _will_latency(broker: Mosquitto, tmp: Path) -> float:
    tmp.mkdir(parents=True, exist_ok=True)
    config_file = tmp / "child.json"
    config_file.write_text(_config(broker.port, tmp).model_dump_json())
    watcher = Collector(broker.host, broker.port, [f"{PREFIX}/{DEVICE}/availability"])
    child = subprocess.Popen(
        [sys.executable, "-m", "tests.integration.fleet.reporter_child", str(config_file)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
    )
    try:
        watcher.wait_for(lambda m: m.json()["state"] == "online", timeout=20)
        mark = watcher.count()
        start = time.perf_counter()
        child.send_signal(signal.SIGKILL)
        watcher.wait_for(lambda m: m.json()["state"] == "offline", timeout=20, after=mark)
        return (time.perf_counter() - start) * 1000
    finally:
        child.kill()
        child.wait()
        watcher.close()


def run(quick: bool = False) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        broker = Mosquitto(workdir=tmp / "broker")
        broker.start()
        try:
            events = asyncio.run(_event_cost(tmp / "a", 2000 if quick else 20000))
            status = _status_cost(500 if quick else 5000)
            trips = asyncio.run(_round_trips(broker, tmp / "b", 20 if quick else 200))
            will = _will_latency(broker, tmp / "c")
        finally:
            broker.stop()
    rows = [
        [
            "event() while broker gone, p50 / p99",
            f"{statistics.median(events):.1f} / {_percentile(events, 0.99):.1f} µs",
        ],
        ["status payload build + encode, p50", f"{statistics.median(status):.0f} µs"],
        [
            "command round trip (ping), p50 / p95",
            f"{statistics.median(trips):.1f} / {_percentile(trips, 0.95):.1f} ms",
        ],
        ["SIGKILL → offline (Last Will) seen", f"{will:.0f} ms"],
    ]
    p99 = _percentile(events, 0.99)
    return {
        "title": "Fleet MQTT (mosquitto on loopback)",
        "columns": ["measure", "value"],
        "rows": rows,
        "goals": [
            {
                "goal": "event() p99 < 1 ms, far inside a 10 ms audio period",
                "value": f"{p99:.1f} µs",
                "met": p99 < 1000,
            },
            {
                "goal": "crash visible as offline < 1 s",
                "value": f"{will:.0f} ms",
                "met": will < 1000,
            },
        ],
        "detail": {
            "event_us": {"p50": statistics.median(events), "p99": p99},
            "ping_ms": {"p50": statistics.median(trips), "p95": _percentile(trips, 0.95)},
            "will_ms": will,
        },
    }


if __name__ == "__main__":
    print(json.dumps(run(quick="--quick" in sys.argv), indent=2))
