"""OpenMetrics output, read back with prometheus_client's strict OpenMetrics parser."""

from __future__ import annotations

import threading
from typing import Any

from prometheus_client.openmetrics.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from edge_recorder.dashboard.fleetstate import FleetState
from edge_recorder.dashboard.metrics import (
    CONTENT_TYPE,
    STATES,
    metrics_snapshot,
    render_openmetrics,
    render_snapshot,
)
from edge_recorder.dashboard.validate import Invalid, classify
from tests.unit.dashboard import payloads as P

NOW = P.T0 + 10
ODD_LOCATION = 'Room "7"\\ East\nwing'


def feed(fs: FleetState, leaf: str, device: str, body: dict[str, Any]) -> None:
    item = classify(P.PREFIX, P.topic(device, leaf), P.encode(body), 65536)
    assert item is not None
    fs.apply(item, P.T0)


def fleet() -> FleetState:
    fs = FleetState(P.PREFIX)
    feed(fs, "availability", "a", P.availability("online", 1))
    feed(fs, "status", "a", P.status("a", state="recording", location=ODD_LOCATION,
                                     backlog={"recordings": 2, "bytes": 4096}))  # fmt: skip
    feed(fs, "availability", "b", P.availability("online", 1))
    feed(fs, "status", "b", P.status("b"))
    feed(fs, "availability", "b", P.availability("offline", 1))
    unknown = {"disk_free_bytes": None, "cpu_temp_c": None}
    feed(fs, "status", "c", P.status("c", mic={"level_dbfs": None}, system=unknown))
    feed(fs, "status", "d", P.status("d", at=P.T0 - 600))
    fs.apply(Invalid("a", "schema", "schema: /state enum"), P.T0)
    fs.apply(Invalid("a", "schema", "schema: /state enum"), P.T0)
    fs.apply(Invalid("a", "flood", "over the rate"), P.T0)
    fs.apply(Invalid(None, "wrong_device", "device id in the topic is not valid"), P.T0)
    return fs


def parse(body: bytes) -> dict[str, Any]:
    parsed = text_string_to_metric_families(body.decode())  # type: ignore[no-untyped-call]
    return {f.name: f for f in parsed}


def by_device(samples: list[Sample], label: str = "device_id") -> dict[str, float]:
    return {s.labels[label]: s.value for s in samples}


def test_output_is_strict_openmetrics_ending_with_eof() -> None:
    body = render_openmetrics(fleet(), NOW, True)
    assert body.endswith(b"# EOF\n")
    assert CONTENT_TYPE == "application/openmetrics-text; version=1.0.0; charset=utf-8"
    families = parse(body)  # raises on anything the OpenMetrics grammar refuses
    assert {
        "edge_recorder_device_up", "edge_recorder_device_state",
        "edge_recorder_device_backlog_bytes", "edge_recorder_device_backlog_recordings",
        "edge_recorder_device_mic_level_dbfs", "edge_recorder_device_disk_free_bytes",
        "edge_recorder_device_cpu_temperature_celsius",
        "edge_recorder_device_last_seen_age_seconds", "edge_recorder_device_problems",
        "edge_recorder_device_bad_messages", "edge_recorder_fleet_devices",
        "edge_recorder_fleet_devices_with_problems", "edge_recorder_dashboard_broker_connected",
        "edge_recorder_dashboard_unattributed_messages",
    } <= set(families)  # fmt: skip
    assert families["edge_recorder_device_backlog_bytes"].unit == "bytes"
    assert families["edge_recorder_device_bad_messages"].type == "counter"


def test_per_device_values() -> None:
    families = parse(render_openmetrics(fleet(), NOW, True))
    up = families["edge_recorder_device_up"].samples
    assert by_device(up) == {"a": 1.0, "b": 0.0, "c": 1.0, "d": 0.0}
    assert {s.labels["device_id"]: s.labels["location"] for s in up}["a"] == ODD_LOCATION
    states = families["edge_recorder_device_state"].samples
    current = {s.labels["device_id"]: s.labels["state"] for s in states if s.value == 1.0}
    assert current == {"a": "recording", "b": "offline", "c": "idle", "d": "stale"}
    assert len(states) == 4 * len(STATES)  # every state, 0 or 1, per device
    backlog = families["edge_recorder_device_backlog_bytes"].samples
    assert by_device(backlog) == {"a": 4096.0, "b": 0.0, "c": 0.0, "d": 0.0}
    age = by_device(families["edge_recorder_device_last_seen_age_seconds"].samples)
    assert age == {"a": 10.0, "b": 10.0, "c": 10.0, "d": 610.0}
    problems = by_device(families["edge_recorder_device_problems"].samples)
    assert problems == {"a": 1.0, "b": 1.0, "c": 0.0, "d": 1.0}  # bad input, offline, stale


def test_null_values_are_left_out_not_zero() -> None:
    families = parse(render_openmetrics(fleet(), NOW, True))
    for name in ("mic_level_dbfs", "disk_free_bytes", "cpu_temperature_celsius"):
        devices = by_device(families[f"edge_recorder_device_{name}"].samples)
        assert "c" not in devices and "a" in devices, name
    assert by_device(families["edge_recorder_device_cpu_temperature_celsius"].samples)["a"] == 51.6


def test_bad_message_counters_and_fleet_totals() -> None:
    families = parse(render_openmetrics(fleet(), NOW, False, {"ingest_overflow_total": 3,
                                                              "history_pending": 12}))  # fmt: skip
    bad = families["edge_recorder_device_bad_messages"].samples
    assert {s.name for s in bad} == {"edge_recorder_device_bad_messages_total"}
    assert {(s.labels["device_id"], s.labels["kind"]): s.value for s in bad if s.value} == {
        ("a", "schema"): 2.0,
        ("a", "flood"): 1.0,
    }
    assert {s.labels["device_id"] for s in bad} == {"a"}  # devices without any are left out
    presence = families["edge_recorder_fleet_devices"].samples
    assert by_device(presence, "presence") == {"online": 2.0, "offline": 1.0, "stale": 1.0,
                                               "unknown": 0.0}  # fmt: skip
    assert families["edge_recorder_fleet_devices_with_problems"].samples[0].value == 3.0
    assert families["edge_recorder_dashboard_broker_connected"].samples[0].value == 0.0
    unattributed = families["edge_recorder_dashboard_unattributed_messages"]
    assert unattributed.type == "counter"
    assert by_device(unattributed.samples, "kind")["wrong_device"] == 1.0
    assert by_device(unattributed.samples, "kind")["too_many_devices"] == 0.0
    overflow = families["edge_recorder_dashboard_ingest_overflow"]
    assert overflow.type == "counter" and overflow.samples[0].value == 3.0
    assert families["edge_recorder_dashboard_history_pending"].samples[0].value == 12.0


def test_an_empty_fleet_is_still_valid() -> None:
    families = parse(render_openmetrics(FleetState(P.PREFIX), NOW, True))
    assert families["edge_recorder_dashboard_broker_connected"].samples[0].value == 1.0
    assert families["edge_recorder_fleet_devices_with_problems"].samples[0].value == 0.0


def test_extra_names_already_prefixed_are_kept() -> None:
    extra = {"edge_recorder_dashboard_live_clients": 2.0, "queue dropped": 1.0}
    families = parse(render_openmetrics(FleetState(P.PREFIX), NOW, True, extra))
    assert families["edge_recorder_dashboard_live_clients"].samples[0].value == 2.0
    assert families["edge_recorder_dashboard_queue_dropped"].samples[0].value == 1.0


def test_a_snapshot_is_a_copy_that_another_thread_can_format() -> None:
    fs = fleet()
    snapshot = metrics_snapshot(fs, NOW)
    feed(fs, "status", "e", P.status("e"))  # the loop goes on changing the model
    fs.apply(Invalid("a", "flood", "over the rate"), P.T0)
    out: list[bytes] = []
    thread = threading.Thread(target=lambda: out.append(render_snapshot(snapshot, True)))
    thread.start()
    thread.join()
    families = parse(out[0])
    assert set(by_device(families["edge_recorder_device_up"].samples)) == {"a", "b", "c", "d"}
    bad = families["edge_recorder_device_bad_messages"].samples
    assert {s.labels["kind"]: s.value for s in bad}["flood"] == 1.0
    assert out[0] == render_snapshot(snapshot, True)
