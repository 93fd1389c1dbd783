"""docs/grafana/edge-recorder-fleet.json: importable, and every query names a metric (and
label) that `fleet serve`'s /metrics really exposes, rendered here from a simulated fleet."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.openmetrics.parser import text_string_to_metric_families

from edge_recorder.dashboard.fleetstate import FleetState
from edge_recorder.dashboard.metrics import render_openmetrics
from edge_recorder.dashboard.simulate import SimulatedFleet
from edge_recorder.dashboard.validate import Invalid, Valid, classify

ROOT = Path(__file__).resolve().parents[3]
DASHBOARD = ROOT / "docs" / "grafana" / "edge-recorder-fleet.json"
METRIC = re.compile(r"edge_recorder_[a-z_]+")
# label names a query relies on: by (...), on(...), group_left(...), {label=~...}, {{label}}
LABEL_LISTS = re.compile(r"\b(?:by|on|group_left|without)\s*\(([^)]*)\)")
MATCHERS = re.compile(r"([a-z_]+)\s*(?:=~|!~|!=|=)\s*\"")
LEGEND = re.compile(r"\{\{\s*([a-z_]+)\s*\}\}")
PROMETHEUS_LABELS = {"job", "instance", "__name__"}
NOW = datetime(2026, 11, 21, 8, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return loaded


def panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in dashboard["panels"]:
        yield panel
        yield from panel.get("panels", [])


def queries(dashboard: dict[str, Any]) -> list[tuple[str, str]]:
    """(expr, legendFormat) of every panel target and every query variable."""
    out = [
        (target["expr"], target.get("legendFormat", ""))
        for panel in panels(dashboard)
        for target in panel.get("targets", [])
    ]
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            out.append((variable["definition"], ""))
    return out


@pytest.fixture(scope="module")
def exposed() -> tuple[set[str], set[str]]:
    """(sample names, label names) of a scrape of a simulated fleet with every kind of
    device, a flooding one and an unattributed message."""
    sim = SimulatedFleet("127.0.0.1", 1, "edge-recorder", 60, seed=3)
    state = FleetState("edge-recorder")
    now = NOW.timestamp()
    for message in sim.round_messages(NOW):
        item = classify("edge-recorder", message.topic, json.dumps(message.payload).encode(), 65536)
        assert isinstance(item, Valid)
        state.apply(item, now)
    state.apply(Invalid("room-001", "flood", "over the rate limit"), now)
    state.note_unattributed("not_json")
    text = render_openmetrics(state, now + 1, broker_connected=True).decode()
    names: set[str] = set()
    labels: set[str] = set()
    for family in text_string_to_metric_families(text):  # type: ignore[no-untyped-call]
        for sample in family.samples:
            names.add(sample.name)
            labels |= set(sample.labels)
    return names, labels


def test_it_is_an_importable_dashboard(dashboard: dict[str, Any]) -> None:
    assert dashboard["schemaVersion"] == 39
    assert dashboard["uid"] and dashboard["title"]
    (source,) = dashboard["__inputs"]
    assert (source["name"], source["type"], source["pluginId"]) == (
        "DS_PROMETHEUS",
        "datasource",
        "prometheus",
    )
    ids = [p["id"] for p in panels(dashboard)]
    assert len(ids) == len(set(ids))
    for panel in panels(dashboard):
        grid = panel["gridPos"]
        assert grid["x"] >= 0 and grid["x"] + grid["w"] <= 24 and grid["h"] > 0
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "${DS_PROMETHEUS}"
    assert "DS_PROMETHEUS" in json.dumps(dashboard["templating"])


def test_every_query_uses_metrics_the_dashboard_exposes(
    dashboard: dict[str, Any], exposed: tuple[set[str], set[str]]
) -> None:
    names, _labels = exposed
    used = {name for expr, _legend in queries(dashboard) for name in METRIC.findall(expr)}
    assert used, "no PromQL found"
    assert used <= names, f"not exposed: {sorted(used - names)}"


def test_every_label_a_query_relies_on_is_exposed(
    dashboard: dict[str, Any], exposed: tuple[set[str], set[str]]
) -> None:
    _names, labels = exposed
    wanted: set[str] = set()
    for expr, legend in queries(dashboard):
        for group in LABEL_LISTS.findall(expr):
            wanted |= {label.strip() for label in group.split(",") if label.strip()}
        wanted |= set(MATCHERS.findall(expr)) | set(LEGEND.findall(legend))
    assert wanted, "no labels found"
    assert wanted - PROMETHEUS_LABELS <= labels, f"not exposed: {sorted(wanted - labels)}"


def test_the_promised_panels_are_there(dashboard: dict[str, Any]) -> None:
    by_metric: dict[str, list[str]] = {}
    for panel in panels(dashboard):
        for target in panel.get("targets", []):
            for name in METRIC.findall(target["expr"]):
                by_metric.setdefault(name, []).append(panel["type"])
    for name in (
        "edge_recorder_fleet_devices",
        "edge_recorder_fleet_devices_with_problems",
        "edge_recorder_device_backlog_bytes",
        "edge_recorder_device_mic_level_dbfs",
        "edge_recorder_device_disk_free_bytes",
        "edge_recorder_device_cpu_temperature_celsius",
        "edge_recorder_device_last_seen_age_seconds",
        "edge_recorder_device_bad_messages_total",
        "edge_recorder_dashboard_broker_connected",
    ):
        assert name in by_metric, name
    assert "table" in by_metric["edge_recorder_device_problems"]  # devices with problems
    assert all("rate(" in expr for expr, _ in queries(dashboard) if "_total" in expr)
