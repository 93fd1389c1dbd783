"""The simulated fleet: schema-valid payloads, reproducible by seed, the promised mix."""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from edge_recorder.dashboard.fleetstate import FleetState
from edge_recorder.dashboard.problems import Trend, status_problems
from edge_recorder.dashboard.simulate import PROBLEM_KINDS, Message, SimulatedFleet
from edge_recorder.dashboard.validate import Valid, classify, parse_at
from edge_recorder.fleet import SCHEMA_DIR

T0 = datetime(2026, 11, 21, 8, 0, tzinfo=UTC)
LEAF_SCHEMA = {"availability": "availability", "status": "status", "events": "event"}


@cache
def validator(name: str) -> jsonschema.Draft202012Validator:
    schema = json.loads((SCHEMA_DIR / f"{name}.schema.json").read_text())
    return jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())


def fleet(count: int = 100, seed: int = 7, **options: Any) -> SimulatedFleet:
    return SimulatedFleet("127.0.0.1", 1, "sim", count, seed, **options)  # never connects


def rounds(sim: SimulatedFleet, n: int) -> list[Message]:
    out: list[Message] = []
    for k in range(n):
        out += sim.round_messages(T0 + timedelta(seconds=k * sim.period_s))
    return out


def test_every_payload_validates_against_its_schema() -> None:
    sim = fleet(count=120)
    messages = rounds(sim, 40)  # long enough for encounters to end and errors to repeat
    leaves: Counter[str] = Counter()
    for message in messages:
        prefix, device_id, leaf = message.topic.split("/")
        assert prefix == "sim"
        errors = list(validator(LEAF_SCHEMA[leaf]).iter_errors(message.payload))
        assert not errors, (message.topic, [e.message for e in errors[:3]])
        if leaf != "availability":
            assert message.payload["device_id"] == device_id
        assert message.retain == (leaf != "events")
        leaves[leaf] += 1
    assert leaves["availability"] == 120  # once, at birth (retained)
    assert leaves["events"] > 120  # a started event each plus encounters, alarms, errors
    types = {m.payload["type"] for m in messages if m.topic.endswith("/events")}
    assert {"started", "encounter_stopped", "encounter_delivered", "alarm", "error"} <= types


def test_the_dashboards_own_validator_accepts_everything() -> None:
    sim = fleet(count=60)
    for message in rounds(sim, 3):
        item = classify("sim", message.topic, json.dumps(message.payload).encode(), 65536)
        assert isinstance(item, Valid), (message.topic, item)


def test_event_ids_never_repeat_per_device() -> None:
    messages = rounds(fleet(count=60), 30)
    keys = [
        (m.payload["device_id"], m.payload["instance"], m.payload["seq"])
        for m in messages
        if m.topic.endswith("/events")
    ]
    assert len(keys) == len(set(keys))


def test_same_seed_same_fleet_and_different_seed_different_fleet() -> None:
    first, again, other = fleet(seed=3), fleet(seed=3), fleet(seed=4)
    assert rounds(first, 5) == rounds(again, 5)
    assert [d.kind for d in fleet(seed=3).devices] != [d.kind for d in other.devices]
    assert rounds(fleet(seed=3), 1) != rounds(other, 1)


def test_ids_locations_and_mix() -> None:
    sim = fleet(count=1000, seed=1)
    ids = [d.device_id for d in sim.devices]
    assert ids[0] == "room-001" and ids[-1] == "room-1000" and len(set(ids)) == 1000
    kinds = sim.kinds()
    assert 680 <= kinds["idle"] <= 720
    assert 140 <= kinds["recording"] + kinds["paused"] <= 160 and kinds["paused"] > 0
    assert all(kinds[k] >= 15 for k in PROBLEM_KINDS)
    assert sum(kinds.values()) == 1000


@pytest.mark.parametrize("count", [8, 20, 40])
def test_small_fleets_still_show_problems(count: int) -> None:
    kinds = fleet(count=count).kinds()
    shown = [k for k in PROBLEM_KINDS if kinds.get(k)]
    assert len(shown) == min(len(PROBLEM_KINDS), count // 4)  # each kind once, worst first
    assert kinds.get("idle", 0) >= count // 2


def last_by_topic(messages: list[Message]) -> dict[str, dict[str, Any]]:
    return {m.topic: m.payload for m in messages if m.retain}


def test_each_kind_shows_the_problem_it_is_named_after() -> None:
    """Fed through the dashboard's own problem rules, each device shows its kind's problem
    (and the healthy ones none); presence kinds are judged from availability and `at`."""
    sim = fleet(count=200, seed=11)
    retained: dict[str, dict[str, Any]] = {}
    trends = {d.device_id: Trend() for d in sim.devices}
    for k in range(4):
        now = T0 + timedelta(seconds=k * sim.period_s)
        for message in sim.round_messages(now):
            if message.topic.endswith("/status"):
                trends[message.payload["device_id"]].update(
                    parse_at(message.payload["at"]), message.payload
                )
            if message.retain:
                retained[message.topic] = message.payload
    now_s = (T0 + timedelta(seconds=3 * sim.period_s)).timestamp()
    for device in sim.devices:
        status = retained[f"sim/{device.device_id}/status"]
        avail = retained[f"sim/{device.device_id}/availability"]
        codes = {p.code for p in status_problems(status, trends[device.device_id])}
        age = now_s - parse_at(status["at"])
        stale = age > 3 * status["interval_s"]
        if device.kind == "offline":
            assert (avail["state"], avail["reason"]) == ("offline", "lost")
            assert avail["birth_seq"] == status["birth_seq"]
        else:
            assert (avail["state"], avail["reason"]) == ("online", "connected")
        assert stale == (device.kind in ("offline", "stale")), device
        if device.kind in ("idle", "recording", "paused", "offline", "stale"):
            assert codes == set(), (device.kind, codes)
            expected = {"offline": "idle", "stale": "idle"}.get(device.kind, device.kind)
            assert status["state"] == expected
        else:
            assert device.kind in codes, (device.kind, codes)


def test_statuses_move_on_and_carry_their_own_time() -> None:
    sim = fleet(count=50)
    first, second = (
        last_by_topic(sim.round_messages(T0 + timedelta(seconds=k * 30))) for k in (0, 1)
    )
    recording = next(d for d in sim.devices if d.kind == "recording")
    topic = f"sim/{recording.device_id}/status"
    assert first[topic]["at"] == "2026-11-21T08:00:00.000Z"
    assert second[topic]["at"] == "2026-11-21T08:00:30.000Z"
    elapsed = [first[topic]["encounter_elapsed_s"], second[topic]["encounter_elapsed_s"]]
    assert elapsed[1] == pytest.approx(elapsed[0] + 30, abs=0.2) or elapsed[1] == 0.0
    frozen = next(d for d in sim.devices if d.kind == "stale")
    assert f"sim/{frozen.device_id}/status" not in second  # a stale device stopped reporting


def test_speed_shortens_the_period_and_the_reported_interval() -> None:
    sim = fleet(count=10, interval_s=30.0, speed=10.0)
    assert sim.period_s == 3.0
    status = next(m.payload for m in sim.round_messages(T0) if m.topic.endswith("/status"))
    assert status["interval_s"] == 3.0


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError):
        fleet(count=0)
    with pytest.raises(ValueError):
        fleet(speed=0)


def test_backfill_gives_a_day_of_samples_per_device(tmp_path: Path) -> None:
    from edge_recorder.dashboard.history import History

    sim = fleet(count=40, seed=5)
    history = History(tmp_path / "h.sqlite3", retention_s=7 * 86400, sample_s=60)
    history.open()
    try:
        end = T0.timestamp()
        written = sim.backfill(history, hours=24, now=end)
        by_kind = {d.kind: d.device_id for d in sim.devices}
        idle = history.series(by_kind["idle"], end - 86400 - 1, end + 1)
        assert len(idle["t"]) == 24 * 60
        assert all(v is not None for v in idle["mic_level_dbfs"])
        assert all(20 <= (v or 0) <= 90 for v in idle["cpu_temp_c"])
        assert written >= 39 * 24 * 60 - 20  # all but the offline one: a full day (stale: nearly)
        offline = history.series(by_kind["offline"], end - 86400 - 1, end + 1)
        assert max(t for t in offline["t"] if t) <= end - 2 * 3600  # silent since it went away
        dead = history.series(by_kind["mic_dead"], end - 86400 - 1, end + 1)
        assert dead["mic_level_dbfs"][-1] is None and dead["mic_level_dbfs"][0] is not None
        low = history.series(by_kind["disk_low"], end - 86400 - 1, end + 1)
        assert (low["disk_free_bytes"][-1] or 0) < 2**30 < (low["disk_free_bytes"][0] or 0)
    finally:
        history.close()


def test_the_fleet_model_sees_the_promised_mix() -> None:
    """Through the dashboard's own validator and fleet model: problems where promised only."""
    sim = fleet(count=200, seed=13)
    state = FleetState("sim")
    for k in range(4):
        now = T0 + timedelta(seconds=k * sim.period_s)
        for message in sim.round_messages(now):
            item = classify("sim", message.topic, json.dumps(message.payload).encode(), 65536)
            assert isinstance(item, Valid)
            state.apply(item, now.timestamp())
    now_s = (T0 + timedelta(seconds=3 * sim.period_s)).timestamp()
    kinds = {d.device_id: d.kind for d in sim.devices}
    for summary in state.summaries(now_s):
        kind = kinds[str(summary["device_id"])]
        codes = {str(p["code"]) for p in summary["problems"]}  # type: ignore[attr-defined]
        assert codes == ({kind} if kind in PROBLEM_KINDS else set()), (kind, codes)
    counts = state.counts(now_s)
    assert counts["total"] == 200
    assert counts["problem"] == sum(k in PROBLEM_KINDS for k in kinds.values())
    assert counts["offline"] == list(kinds.values()).count("offline")
    assert counts["paused"] == list(kinds.values()).count("paused")
