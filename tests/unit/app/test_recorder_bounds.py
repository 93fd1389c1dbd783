"""What the recorder keeps and reports for others (issue #19): the indicator history read by
the panel simulator stays bounded, and the status carries fleet reporting's loss counters."""

from __future__ import annotations

from typing import Any

from edge_recorder.app.recorder import INDICATOR_HISTORY
from edge_recorder.encounter import events as ev
from edge_recorder.status import FleetCounters
from tests.unit.app.test_recorder import make


async def test_many_thousands_of_indicator_effects_keep_the_history_bounded() -> None:
    recorder, *_ = make()
    patterns = ["idle", "recording", "paused", "stopping", "error"]
    for n in range(20_000):
        recorder._apply(ev.Indicator(patterns[n % len(patterns)]))  # type: ignore[arg-type]
    assert len(recorder.indicators) == INDICATOR_HISTORY
    shown = [name for _, name in recorder.indicators]
    expected = [patterns[n % len(patterns)] for n in range(20_000)][-INDICATOR_HISTORY:]
    assert shown == expected  # the newest ones, in order: what the simulator shows
    times = [t for t, _ in recorder.indicators]
    assert times == sorted(times)


class FakeFleet:
    def status_changed(self) -> None:
        pass

    def counters(self) -> FleetCounters:
        return FleetCounters(connected=True, commands_limited=480, replies_dropped=460)

    def event(self, event: Any, *, encounter_ref: str | None = None, **details: Any) -> None:
        pass


async def test_status_carries_the_fleet_counters_only_with_mqtt() -> None:
    recorder, *_ = make()
    assert recorder.status().mqtt is None  # MQTT off
    recorder.fleet = FakeFleet()
    counters = recorder.status().mqtt
    assert counters is not None and counters.commands_limited == 480
    assert recorder.status().model_dump(mode="json")["mqtt"]["replies_dropped"] == 460
