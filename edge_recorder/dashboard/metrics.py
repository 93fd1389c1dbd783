"""The fleet as OpenMetrics for Prometheus: one scrape, one pass over the fleet model.

A custom `prometheus_client` Collector reads `FleetState` at scrape time instead of keeping
gauges in step with every message, so ingest pays nothing for metrics. The scrape is two steps:
`metrics_snapshot` copies what it needs on the loop that owns the model (cheap), and
`render_snapshot` formats it (the expensive part, pure, fine in a worker thread); one call,
`render_openmetrics`, does both for small fleets and tests. Each render uses a private
`CollectorRegistry` (never the process-global one) and the strict OpenMetrics exposition, which
ends with `# EOF`. A per-device sample whose value is unknown (null in the status) is left out
rather than reported as 0, so "no data" never looks like "empty disk".
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.openmetrics.exposition import generate_latest
from prometheus_client.registry import Collector, CollectorRegistry

from edge_recorder.dashboard.fleetstate import FleetState

CONTENT_TYPE = "application/openmetrics-text; version=1.0.0; charset=utf-8"
STATES = ("idle", "recording", "paused", "stopping", "error", "offline", "stale", "unknown")
PRESENCES = ("online", "offline", "stale", "unknown")
_NAME_UNSAFE = re.compile(r"[^a-zA-Z0-9_]")
# (metric, summary key, unit, help)
_VALUES = (
    ("backlog_bytes", "backlog_bytes", "bytes", "Bytes waiting in the device's spool."),
    ("backlog_recordings", "backlog_recordings", "", "Recordings waiting in the spool."),
    ("mic_level_dbfs", "mic_level_dbfs", "", "Microphone level in dBFS."),
    ("disk_free_bytes", "disk_free_bytes", "bytes", "Free bytes on the spool's filesystem."),
    ("cpu_temperature_celsius", "cpu_temp_c", "celsius", "CPU temperature."),
    ("last_seen_age_seconds", "age_s", "seconds", "Now minus the `at` of the last status."),
)


def device_state(summary: Mapping[str, object]) -> str:
    """The one state the state metric reports: presence first, then the status's state."""
    presence = summary["presence"]
    if presence in ("offline", "stale"):
        return str(presence)
    state = summary["state"]
    return state if isinstance(state, str) and state in STATES else "unknown"


def _number(value: object) -> float | None:
    if isinstance(value, bool):
        return float(value)
    return float(value) if isinstance(value, int | float) else None


@dataclass(frozen=True)
class FleetSnapshot:
    """What one scrape reports, copied out of the FleetState (safe to format in any thread)."""

    summaries: list[dict[str, object]]
    bad: dict[str, dict[str, int]]  # device -> kind -> count, devices with any only
    unattributed: dict[str, int]


def metrics_snapshot(state: FleetState, now: float) -> FleetSnapshot:
    """Copy the scrape's data (call on the loop that owns `state`; ~7 ms per 1,000 devices)."""
    bad: dict[str, dict[str, int]] = {}
    for device_id in state.device_ids():
        record = state.record(device_id)
        if record is not None and record.bad_total:
            bad[device_id] = dict(record.bad)
    return FleetSnapshot(state.summaries(now), bad, dict(state.unattributed))


class FleetCollector(Collector):
    """Turns one FleetSnapshot into metric families when collected."""

    def __init__(
        self, snapshot: FleetSnapshot, broker_connected: bool, extra: Mapping[str, float]
    ) -> None:
        self.snapshot = snapshot
        self.broker_connected = broker_connected
        self.extra = extra

    def describe(self) -> Iterable[Metric]:
        return []  # names are not registered: the registry is private to one render

    def collect(self) -> Iterator[Metric]:
        summaries = self.snapshot.summaries
        prefix = "edge_recorder_device_"
        up = GaugeMetricFamily(
            prefix + "up", "1 when the device is online.", labels=["device_id", "location"]
        )
        state = GaugeMetricFamily(
            prefix + "state", "1 for the device's current state.", labels=["device_id", "state"]
        )
        values = [
            GaugeMetricFamily(prefix + name, text, labels=["device_id"], unit=unit)
            for name, _, unit, text in _VALUES
        ]
        problems = GaugeMetricFamily(
            prefix + "problems", "Problems the dashboard sees.", labels=["device_id"]
        )
        bad = CounterMetricFamily(
            prefix + "bad_messages",
            "Messages from the device the dashboard refused, by reason.",
            labels=["device_id", "kind"],
        )
        presence_counts = dict.fromkeys(PRESENCES, 0)
        with_problems = 0
        for summary in summaries:
            device = str(summary["device_id"])
            presence = str(summary["presence"])
            presence_counts[presence] = presence_counts.get(presence, 0) + 1
            location = summary["location"]
            up.add_metric([device, location if isinstance(location, str) else ""],
                          1.0 if presence == "online" else 0.0)  # fmt: skip
            current = device_state(summary)
            for name in STATES:
                state.add_metric([device, name], 1.0 if name == current else 0.0)
            for family, (_, key, _, _) in zip(values, _VALUES, strict=True):
                value = _number(summary[key])
                if value is not None:
                    family.add_metric([device], value)
            found = summary["problems"]
            count = len(found) if isinstance(found, list) else 0
            with_problems += count > 0
            problems.add_metric([device], float(count))
            for kind, n in self.snapshot.bad.get(device, {}).items():
                bad.add_metric([device, kind], float(n))
        yield up
        yield state
        yield from values
        yield problems
        yield bad
        fleet = GaugeMetricFamily(
            "edge_recorder_fleet_devices", "Devices by presence.", labels=["presence"]
        )
        for presence, n in presence_counts.items():
            fleet.add_metric([presence], float(n))
        yield fleet
        yield GaugeMetricFamily(
            "edge_recorder_fleet_devices_with_problems",
            "Devices with at least one problem.",
            value=float(with_problems),
        )
        yield GaugeMetricFamily(
            "edge_recorder_dashboard_broker_connected",
            "1 while the dashboard is connected to the MQTT broker.",
            value=1.0 if self.broker_connected else 0.0,
        )
        unattributed = CounterMetricFamily(
            "edge_recorder_dashboard_unattributed_messages",
            "Refused messages no device can carry (bad topic id, beyond max_devices).",
            labels=["kind"],
        )
        for kind, n in self.snapshot.unattributed.items():
            unattributed.add_metric([kind], float(n))
        yield unattributed
        yield from self._extra()

    def _extra(self) -> Iterator[Metric]:
        for key, value in sorted(self.extra.items()):
            name = _NAME_UNSAFE.sub("_", key)
            if not name.startswith("edge_recorder_"):
                name = "edge_recorder_dashboard_" + name
            if name.endswith("_total"):
                yield CounterMetricFamily(name[: -len("_total")], key, value=value)
            else:
                yield GaugeMetricFamily(name, key, value=value)


def render_snapshot(
    snapshot: FleetSnapshot, broker_connected: bool, extra: Mapping[str, float] | None = None
) -> bytes:
    """Format a snapshot (pure; run it in a worker thread for a large fleet)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(FleetCollector(snapshot, broker_connected, extra or {}))
    body: bytes = generate_latest(registry)  # type: ignore[no-untyped-call]
    return body


def render_openmetrics(
    state: FleetState,
    now: float,
    broker_connected: bool,
    extra: Mapping[str, float] | None = None,
) -> bytes:
    """The whole scrape body, in one call on the loop thread.

    `extra`: more dashboard values by metric name (`edge_recorder_dashboard_` is prepended
    unless the name already starts with `edge_recorder_`); a name ending `_total` is a counter,
    any other a gauge. Costs about 0.2 s per 1,000 devices, mostly prometheus_client's
    formatting: for a large fleet take `metrics_snapshot` on the loop and run `render_snapshot`
    in a thread instead.
    """
    return render_snapshot(metrics_snapshot(state, now), broker_connected, extra)
