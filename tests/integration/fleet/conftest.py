"""Fleet tests: a real mosquitto, the real FleetReporter, a fake daemon behind it.

Every message any collector saw is validated against the JSON Schemas and the patient-data
rule at teardown, so each test also checks the payloads it caused.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from edge_recorder.config.model import Config
from edge_recorder.fleet.reporter import FleetReporter
from tests.integration.fleet.checks import validate_published
from tests.integration.fleet.fakes import FakeDaemon, FakeSystem
from tests.support.mosquitto import Collector, Mosquitto

PREFIX = "test-fleet"
DEVICE = "exam-1"


def fleet_config(host: str, tmp_path: Path, **mqtt: Any) -> Config:
    device = mqtt.pop("device_id", DEVICE)
    return Config.model_validate(
        {
            "device": {"id": device, "location": "Room 1"},
            "spool": {"dir": str(tmp_path / "spool")},
            "mqtt": {
                "host": host,
                "topic_prefix": PREFIX,
                "birth_seq_file": str(tmp_path / f"birth-{device}"),
                **mqtt,
            },
        }
    )


@pytest.fixture
def make_config(tmp_path: Path) -> Callable[..., Config]:
    def make(broker: Mosquitto, **mqtt: Any) -> Config:
        return fleet_config(broker.host, tmp_path, **{"port": broker.port, **mqtt})

    return make


@pytest.fixture
def collect(mqtt_collector: Callable[..., Collector]) -> Iterator[Callable[..., Collector]]:
    made: list[Collector] = []

    def make(broker: Mosquitto, topics: list[str] | None = None, **options: Any) -> Collector:
        collector = mqtt_collector(broker, topics or [f"{PREFIX}/#", "homeassistant/#"], **options)
        made.append(collector)
        return collector

    yield make
    for collector in made:
        for message in list(collector.messages):
            validate_published(PREFIX, message.topic, message.payload)


StartReporter = Callable[..., Any]


@pytest.fixture
async def start_reporter() -> AsyncIterator[StartReporter]:
    started: list[FleetReporter] = []

    async def start(
        config: Config, daemon: FakeDaemon | None = None, **options: Any
    ) -> tuple[FleetReporter, FakeDaemon]:
        daemon = daemon or FakeDaemon()
        options.setdefault("reconnect_min_s", 1)
        reporter = FleetReporter(config, daemon.status, daemon, system=FakeSystem(), **options)
        await reporter.start()
        started.append(reporter)
        return reporter, daemon

    yield start
    for reporter in started:
        await reporter.stop()
