"""The effect interpreter (`effects.Recorder`) with fakes for capture, spool and delivery:
the order of I/O it performs for the controller's effects, and its small helpers."""

from __future__ import annotations

import asyncio
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from edge_recorder.app.daemon import status_line
from edge_recorder.app.recorder import MqttHandler, Recorder
from edge_recorder.delivery.engine import DeliverySnapshot
from edge_recorder.encounter import events as ev
from edge_recorder.encounter.controller import EncounterController, Limits
from edge_recorder.panel.gpio import NullPanel
from edge_recorder.panel.simulator import pin_history
from edge_recorder.spool import SpoolRefused
from edge_recorder.status import (
    BacklogStatus,
    CommandRequest,
    CommandResult,
    DeviceStatus,
    MicStatus,
)


def done(value: Any = None, exc: BaseException | None = None) -> Future[Any]:
    fut: Future[Any] = Future()
    if exc is None:
        fut.set_result(value)
    else:
        fut.set_exception(exc)
    return fut


@dataclass
class FakeWorker:
    calls: list[tuple[Any, ...]] = field(default_factory=list)
    open_error: BaseException | None = None
    mic: MicStatus = field(default_factory=lambda: MicStatus(present=True))

    def open_recording(self, cid: str, seq: int, guid: str) -> Future[Any]:
        self.calls.append(("open", cid, seq))
        return done(exc=self.open_error)

    def close_recording(self, reason: str) -> Future[Any]:
        self.calls.append(("close", reason))
        return done(0)

    def barrier(self) -> Future[Any]:
        self.calls.append(("barrier",))
        return done()


@dataclass
class FakeSpace:
    alarm: str | None = None


@dataclass
class FakeSpool:
    ended: list[str] = field(default_factory=list)
    alarm: str | None = None

    def end_encounter(self, cid: str) -> None:
        self.ended.append(cid)

    def backlog(self) -> BacklogStatus:
        return BacklogStatus(recordings=len(self.ended))

    def space(self) -> FakeSpace:
        return FakeSpace(self.alarm)


@dataclass
class FakeDelivery:
    wakes: int = 0

    def wake(self) -> None:
        self.wakes += 1

    def snapshot(self) -> DeliverySnapshot:
        return DeliverySnapshot.unknown()


def make(**worker: Any) -> tuple[Recorder, FakeWorker, FakeSpool, FakeDelivery, list[str]]:
    fw, fs, fd = FakeWorker(**worker), FakeSpool(), FakeDelivery()
    lines: list[str] = []
    recorder = Recorder(
        EncounterController(Limits()),
        NullPanel(),
        fw,  # type: ignore[arg-type]
        fs,  # type: ignore[arg-type]
        fd,
        on_change=lambda status: lines.append(status_line(status)),
    )
    return recorder, fw, fs, fd, lines


async def settle(recorder: Recorder, state: str) -> None:
    for _ in range(200):
        if recorder.controller.state == state:
            return
        await asyncio.sleep(0)  # let the threadsafe callbacks and the close task run
    raise AssertionError(f"state {recorder.controller.state}, wanted {state}")


async def test_start_stop_opens_closes_then_seals_and_wakes_delivery() -> None:
    recorder, worker, spool, delivery, lines = make()
    result = await recorder.execute(CommandRequest(name="start"))
    cid = result.data["correlation_id"]
    assert result.ok and result.state == "recording" and worker.calls == [("open", cid, 1)]
    assert "recording #1" in lines[-1]
    stop = await recorder.execute(CommandRequest(name="stop"))
    assert stop.state == "stopping" and spool.ended == []  # sealed only after the close
    await settle(recorder, "idle")
    assert worker.calls[1:] == [("close", "stop"), ("barrier",)]
    assert spool.ended == [cid] and delivery.wakes >= 2
    assert [name for _, name in recorder.indicators] == ["recording", "stopping", "idle"]


async def test_a_refused_first_recording_ends_the_encounter_and_blocks_new_starts() -> None:
    recorder, worker, spool, _, _ = make(open_error=SpoolRefused("above high water"))
    await recorder.execute(CommandRequest(name="start"))
    await settle(recorder, "error")  # ended at once, spool alarm raised
    assert spool.ended and worker.calls[-1] == ("barrier",)
    again = await recorder.execute(CommandRequest(name="start"))
    assert not again.ok and again.code == "spool_full"


async def test_a_full_spool_is_seen_before_a_start_or_a_press() -> None:
    recorder, worker, spool, _, _ = make()
    spool.alarm = "spool-high-water"
    refused = await recorder.execute(CommandRequest(name="start"))
    assert not refused.ok and refused.code == "spool_full" and worker.calls == []
    assert recorder.controller.state == "error"  # the refused start raised the alarm

    pressed, worker2, spool2, _, _ = make()
    spool2.alarm = "spool-full"
    pressed.post(ev.RecordPressed())  # as the GPIO thread hands a press to the loop
    await settle(pressed, "error")
    assert worker2.calls == [] and "spool_full" in pressed.status().alarms


async def test_mqtt_replies_carry_the_opaque_ref_and_special_commands_run() -> None:
    recorder, _, _, _, _ = make()
    recorder.extra_commands["ping"] = lambda: CommandResult(ok=True, data={"pong": True})
    handler = MqttHandler(recorder)
    started = await handler.execute(CommandRequest(name="start"))
    assert "correlation_id" not in started.data and len(started.data["encounter_ref"]) == 12
    assert (await handler.execute(CommandRequest(name="ping"))).data == {"pong": True}
    assert (await recorder.execute(CommandRequest(name="ping"))).ok


def test_status_line_names_a_missing_mic() -> None:
    line = status_line(DeviceStatus(mic=MicStatus(present=False, last_error="no such file")))
    assert line.endswith("; no mic (no such file)") and "\n" not in line
    assert "no mic" not in status_line(DeviceStatus(mic=MicStatus(present=True)))


def test_pin_history_turns_gpiozero_deltas_into_absolute_times() -> None:
    @dataclass
    class State:
        timestamp: float
        state: float

    @dataclass
    class Pin:
        states: list[State]
        _last_change: float

    pin = Pin([State(0.0, 0.0), State(2.0, 1.0), State(0.5, 0.0)], _last_change=10.0)
    assert pin_history(pin) == [[7.5, 0.0], [9.5, 1.0], [10.0, 0.0]]
