"""The fleet dashboard under a 1,000-device fleet: CPU, peak RSS, status-to-browser latency, load.

Set-up (all on loopback, nothing faked inside the dashboard): a real mosquitto; the real
`edge-recorder fleet serve` as a child process (open mode, history in a temp dir); a
`SimulatedFleet` of 1,000 devices in *this* process (its work is not charged to the
dashboard) whose retained availability and status are on the broker before the dashboard
starts, then each device's status every 30 s at its own phase, their events, and one device
flooding its status at 200 msg/s (the dashboard's per-device rate limit must drop it cheaply);
a real Chromium (Playwright) on the fleet page, connected to the live stream all along, as an
operator would be.

CPU % of one core: (utime + stime) of the dashboard process (all its threads) from
/proc/<pid>/stat over the measuring window (60 s; 20 s with --quick) divided by its wall time;
the window starts after the page loads. Peak RSS: VmHWM from /proc/<pid>/status at the end.

Latency, publish to browser: a probe device (`probe-000`, not part of the fleet, its own MQTT
connection) publishes a status about once a second whose `location` carries a counter; a
MutationObserver injected into the page records `Date.now()` the first time the probe row's
`.location` cell shows each counter; the latency is that minus the wall time just before the
publish (same host, same clock). It covers broker, ingest (batched <= 100 ms), validation,
the fleet model, the live hub (batched <= 500 ms), SSE and the page's rendering. A counter
never seen counts as infinitely late.

Load: navigation start (`performance.timeOrigin`) to the moment the fleet table holds every
device (fleet + probe), recorded by a MutationObserver installed before any page script
runs; five loads, the median is the figure (the first is with a cold cache).

Two cases: as specified (the flood on: the goals are checked against it) and without the
flood, which shows what the flood itself costs (the paho thread's per-message work and the
live updates of the flooding device's bad-input count).

Alone: `python -m benchmarks.bench_dashboard [--seconds S] [--devices N] [--flood R]` prints
the result as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from benchmarks._daemon import cpu_seconds, status_kb, thread_cpu_seconds

if TYPE_CHECKING:
    from playwright.sync_api import Page
from devtools.browser import CHROMIUM, CHROMIUM_ARGS
from edge_recorder.dashboard.broker import Broker, die_with_parent, free_port
from edge_recorder.dashboard.simulate import SimulatedFleet
from edge_recorder.fleet.payloads import encode, iso

ROOT = Path(__file__).resolve().parent.parent
PREFIX, PROBE = "edge-recorder", "probe-000"
GOALS = {"cpu_pct": 5.0, "rss_mb": 200.0, "latency_p95_ms": 1000.0, "load_ms": 500.0}
DASHBOARD_ARGV = [sys.executable, "-m", "edge_recorder"]
LOADS = 5

# Before any page script: note when the table first holds `window.__expectRows` rows.
LOAD_PROBE = """
window.__expectRows = %d;
window.__loadedMs = null;
new MutationObserver((_m, observer) => {
  const rows = document.querySelectorAll('[data-testid=fleet-table] tr[data-device-id]');
  if (rows.length >= window.__expectRows) {
    window.__loadedMs = performance.now();
    observer.disconnect();
  }
}).observe(document, {childList: true, subtree: true});
"""
# Once loaded: the first time the probe row shows each counter, by the wall clock.
LATENCY_PROBE = """(probe) => {
  window.__probeSeen = {};
  const look = () => {
    const cell = document.querySelector(`tr[data-device-id="${probe}"] .location`);
    const match = cell && /marker (\\d+)/.exec(cell.textContent || "");
    if (match && !(match[1] in window.__probeSeen)) window.__probeSeen[match[1]] = Date.now();
  };
  new MutationObserver(look).observe(document.body,
    {childList: true, subtree: true, characterData: true});
}"""


class FleetBroker(Broker):
    """mosquitto as a fleet's broker must be set up: a new subscriber is sent every retained
    message at once, and mosquitto's default `max_queued_messages 1000` (per client) drops the
    rest ("Outgoing messages are being dropped"), so a dashboard would start without the
    status or availability of most of 1,000 devices."""

    def config_lines(self) -> list[str]:
        lines = super().config_lines()
        if not any(line.startswith("max_queued_messages") for line in lines):
            lines.append("max_queued_messages 100000")
        return lines


def _ms(value: float) -> float | None:
    """Rounded milliseconds; None for a probe never seen (JSON has no Infinity)."""
    return None if value == float("inf") else round(value, 1)


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.loads(response.read())


def _wait(
    predicate: Callable[[], bool], timeout: float, what: str, child: subprocess.Popen[bytes]
) -> None:
    """Poll until `predicate` holds; fail at the deadline or as soon as `child` exits."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if predicate():
                return
        except OSError:
            pass
        if child.poll() is not None:
            raise RuntimeError(f"the dashboard exited ({child.returncode}) before {what}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"dashboard benchmark: no {what} within {timeout} s")
        time.sleep(0.1)  # polling a child process with a deadline


def _page_value(page: Page, expression: str, timeout: float) -> float:
    """Poll a number the page's observers record (the page's CSP forbids wait_for_function's
    eval; page.evaluate goes through the DevTools protocol, which it does not restrict)."""
    deadline = time.monotonic() + timeout
    while (value := page.evaluate(expression)) is None:
        if time.monotonic() > deadline:
            raise TimeoutError(f"dashboard benchmark: {expression} not set in {timeout} s")
        page.wait_for_timeout(20)
    return float(value)


class Probe:
    """The latency probe: one device on its own connection, a status a second on demand."""

    def __init__(self, port: int, template: dict[str, Any]) -> None:
        self.template = {**template, "device_id": PROBE, "state": "idle", "alarms": []}
        self.sent: dict[int, float] = {}
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=PROBE)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        online = {"v": 1, "state": "online", "birth_seq": 1, "reason": "connected"}
        online["at"] = iso(datetime.now(UTC))
        topic = f"{PREFIX}/{PROBE}/availability"
        self.client.publish(topic, encode(online), qos=1, retain=True).wait_for_publish(10)

    def publish(self, marker: int) -> None:
        status = {**self.template, "location": f"probe marker {marker}"}
        status["system"] = {**status["system"], "hostname": PROBE}
        status["at"] = iso(datetime.now(UTC))
        body = encode(status)
        self.sent[marker] = time.time() * 1000
        self.client.publish(f"{PREFIX}/{PROBE}/status", body, qos=1, retain=True)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def measure(seconds: float, devices: int = 1000, flood_per_s: float = 200.0) -> dict[str, Any]:
    """One run: the figures and the goals' verdicts."""
    from playwright.sync_api import sync_playwright

    tmp = Path(tempfile.mkdtemp(prefix="bench-dashboard-"))
    broker = FleetBroker(tmp / "mosquitto", detach=True).start()
    fleet = SimulatedFleet("127.0.0.1", broker.port, PREFIX, devices, seed=1, interval_s=30.0)
    dashboard: subprocess.Popen[bytes] | None = None
    probe: Probe | None = None
    try:
        fleet.publish_all()  # the fleet is there, retained, before the dashboard starts
        port = free_port()
        config = tmp / "fleet.toml"
        config.write_text(f'audit_log = "{tmp / "audit.log"}"\n')
        env = {k: v for k, v in os.environ.items() if not k.startswith("EDGE_RECORDER")}
        with (tmp / "dashboard.log").open("wb") as log:
            dashboard = subprocess.Popen(
                [
                    *DASHBOARD_ARGV,
                    *("fleet", "serve"),
                    *("--config", str(config), "--listen", f"127.0.0.1:{port}"),
                    *("--broker", f"127.0.0.1:{broker.port}", "--history", str(tmp / "h.sqlite3")),
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                env=env,
                cwd=ROOT,
                start_new_session=True,
                preexec_fn=die_with_parent,
            )
        base = f"http://127.0.0.1:{port}"

        def total() -> int:
            counts: dict[str, int] = _get_json(f"{base}/api/fleet")["counts"]
            return counts["total"]

        _wait(lambda: total() >= devices, 60, "the fleet was read", dashboard)
        healthy = next(d for d in fleet.devices if d.kind == "idle")
        probe = Probe(broker.port, fleet.status(healthy, datetime.now(UTC)))
        probe.publish(0)
        _wait(lambda: total() >= devices + 1, 30, "the probe showed", dashboard)
        fleet.start(publish_first=False)
        flooder = next(d.device_id for d in fleet.devices if d.kind == "idle")
        if flood_per_s > 0:
            fleet.flood(flooder, flood_per_s)
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_page()
            page.add_init_script(LOAD_PROBE % (devices + 1))
            loads = []
            for _ in range(LOADS):
                page.goto(base + "/", wait_until="commit")
                loads.append(_page_value(page, "window.__loadedMs", 30))
            page.evaluate(LATENCY_PROBE, PROBE)
            threads0 = thread_cpu_seconds(dashboard.pid)
            cpu0, wall0 = cpu_seconds(dashboard.pid), time.monotonic()
            for marker in range(1, int(seconds) + 1):
                probe.publish(marker)
                page.wait_for_timeout(max(0.0, wall0 + marker - time.monotonic()) * 1000)
            cpu1, wall1 = cpu_seconds(dashboard.pid), time.monotonic()
            threads1 = thread_cpu_seconds(dashboard.pid)
            page.wait_for_timeout(2000)  # the last marker's chance to arrive
            seen: dict[str, float] = page.evaluate("window.__probeSeen")
            browser.close()
        hwm_kb, rss_kb = status_kb(dashboard.pid, "VmHWM"), status_kb(dashboard.pid, "VmRSS")
        fleet_now = _get_json(f"{base}/api/fleet")
    finally:
        fleet.stop()
        if probe is not None:
            probe.close()
        if dashboard is not None:
            dashboard.terminate()
            try:
                dashboard.wait(timeout=15)
            except subprocess.TimeoutExpired:
                dashboard.kill()
        broker.stop()
        log_tail = (tmp / "dashboard.log").read_text(errors="replace")[-3000:]
        shutil.rmtree(tmp, ignore_errors=True)
        if sys.exc_info()[0] is not None:
            print(f"dashboard log:\n{log_tail}", file=sys.stderr)
    latencies = [
        seen[str(m)] - at if str(m) in seen else float("inf")
        for m, at in probe.sent.items()
        if m > 0
    ]
    finite = [v for v in latencies if v != float("inf")]
    result = {
        "devices": devices,
        "flood_per_s": flood_per_s,
        "window_s": round(wall1 - wall0, 1),
        "cpu_pct": round(100 * (cpu1 - cpu0) / (wall1 - wall0), 2),
        "rss_mb": round(hwm_kb / 1024, 1),
        "rss_end_mb": round(rss_kb / 1024, 1),
        "threads_pct": {
            name: round(100 * (cpu - threads0.get(name, 0.0)) / (wall1 - wall0), 2)
            for name, cpu in sorted(threads1.items(), key=lambda kv: -kv[1])
            if cpu - threads0.get(name, 0.0) > 0
        },
        "latency_p50_ms": _ms(statistics.median(latencies)),
        "latency_p95_ms": _ms(_percentile(latencies, 0.95)),
        "latency_max_ms": _ms(max(latencies)),
        "latency_min_ms": round(min(finite), 1) if finite else None,
        "probes": len(latencies),
        "probes_missed": len(latencies) - len(finite),
        "load_ms": round(statistics.median(loads), 1),
        "load_first_ms": round(loads[0], 1),
        "load_max_ms": round(max(loads), 1),
        "messages_published": fleet.published,
        "fleet_counts": fleet_now["counts"],
        "flooder": flooder,
        "flooder_bad_input": next(
            (d["bad_input_total"] for d in fleet_now["devices"] if d["device_id"] == flooder), None
        ),
    }
    result["goals"] = {
        key: result[key] is not None and result[key] < limit for key, limit in GOALS.items()
    }
    return result


def run(quick: bool) -> dict[str, Any]:
    seconds = 20.0 if quick else 60.0
    cases = [("one device flooding at 200 msg/s", 200.0), ("no flood", 0.0)]
    results = [{"case": label, **measure(seconds, 1000, rate)} for label, rate in cases]
    labels = {
        "cpu_pct": "CPU % of one core",
        "rss_mb": "peak RSS MB",
        "latency_p95_ms": "status -> browser p95 ms",
        "load_ms": "fleet page load ms (median of 5)",
    }
    first = results[0]  # the goals are about the specified load, flood included
    return {
        "title": f"Fleet dashboard: 1000 devices, statuses every 30 s, events, a browser "
        f"watching the fleet page, {seconds:g} s",
        "columns": [
            "case",
            "CPU % of one core",
            "peak RSS MB",
            "status -> browser p50 / p95 / max ms",
            "page load median / first / max ms",
            "probes seen",
        ],
        "rows": [
            [
                r["case"],
                r["cpu_pct"],
                r["rss_mb"],
                f"{r['latency_p50_ms']} / {r['latency_p95_ms']} / {r['latency_max_ms']}",
                f"{r['load_ms']} / {r['load_first_ms']} / {r['load_max_ms']}",
                f"{r['probes'] - r['probes_missed']} of {r['probes']}",
            ]
            for r in results
        ],
        "goals": [
            {
                "goal": f"{first['case']}: {labels[key]} < {limit:g}",
                "value": first[key],
                "met": first["goals"][key],
            }
            for key, limit in GOALS.items()
        ],
        "detail": {"results": results, "loadavg": os.getloadavg(), "method": __doc__},
    }


def main() -> None:
    """`python -m benchmarks.bench_dashboard [--seconds S] [--devices N] [--flood R]`."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="measuring window")
    parser.add_argument("--devices", type=int, default=1000)
    parser.add_argument("--flood", type=float, default=200.0, help="msg/s of the flooding device")
    parser.add_argument("--quick", action="store_true", help="a 20 s window")
    args = parser.parse_args()
    seconds = 20.0 if args.quick else args.seconds
    print(json.dumps(measure(seconds, args.devices, args.flood), indent=1), flush=True)


if __name__ == "__main__":
    main()
