"""The simulated fleet on a real mosquitto: what a late subscriber finds retained, the
schedule that keeps statuses coming, and a flood."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from edge_recorder.dashboard.simulate import SimulatedFleet
from tests.support.mosquitto import Collector, Mosquitto, wait_until

COUNT = 40


@pytest.fixture
def sim(mosquitto_broker: Mosquitto) -> Iterator[SimulatedFleet]:
    fleet = SimulatedFleet(
        mosquitto_broker.host, mosquitto_broker.port, "sim", COUNT, seed=2, speed=60.0
    )
    yield fleet
    fleet.stop()


def retained(collector: Collector, leaf: str) -> dict[str, dict[str, object]]:
    return {
        m.topic.split("/")[1]: m.json()
        for m in list(collector.messages)
        if m.retain and m.topic.endswith(f"/{leaf}")
    }


def test_a_late_subscriber_finds_every_device_retained(
    sim: SimulatedFleet, mosquitto_broker: Mosquitto
) -> None:
    sent = sim.publish_all()  # returns once the broker acknowledged every message
    assert sent >= 2 * COUNT
    late = Collector(mosquitto_broker.host, mosquitto_broker.port, ["sim/+/+"])
    try:
        wait_until(
            lambda: (
                len(retained(late, "status")) == COUNT
                and len(retained(late, "availability")) == COUNT
            ),
            what="a retained status and availability for every device",
        )
        statuses, presence = retained(late, "status"), retained(late, "availability")
        assert sorted(statuses) == [f"room-{i:03d}" for i in range(1, COUNT + 1)]
        assert all(statuses[d]["device_id"] == d for d in statuses)
        offline = [d.device_id for d in sim.devices if d.kind == "offline"]
        assert offline and all(presence[d]["reason"] == "lost" for d in offline)
        assert not any(m.topic.endswith("/events") for m in late.messages)  # not retained
    finally:
        late.close()


def test_the_schedule_keeps_statuses_coming_and_a_flood_floods(
    sim: SimulatedFleet, mosquitto_broker: Mosquitto
) -> None:
    watcher = Collector(mosquitto_broker.host, mosquitto_broker.port, ["sim/+/status"])
    try:
        sim.start()  # period 0.5 s (30 s at speed 60)
        healthy = next(d.device_id for d in sim.devices if d.kind == "idle")
        topic = f"sim/{healthy}/status"

        def ats() -> set[object]:
            return {m.json()["at"] for m in list(watcher.messages) if m.topic == topic}

        wait_until(lambda: len(ats()) >= 4, what="four statuses of one device")
        frozen = next(d.device_id for d in sim.devices if d.kind == "stale")
        assert sum(m.topic == f"sim/{frozen}/status" for m in list(watcher.messages)) == 1

        flooder = next(d.device_id for d in sim.devices if d.kind == "recording")
        flood_topic = f"sim/{flooder}/status"
        before = sum(m.topic == flood_topic for m in list(watcher.messages))
        sim.flood(flooder, per_s=200)
        wait_until(
            lambda: sum(m.topic == flood_topic for m in list(watcher.messages)) >= before + 100,
            what="a hundred flooded statuses",
        )
    finally:
        watcher.close()
    sim.stop()
    assert sim.published > COUNT + 100
