"""Controller + GPIO panel (MockFactory) + control socket wired in one asyncio loop.

The wiring below is a small test harness, not the daemon: it interprets the controller's
effects the way the daemon will (LED/buzzer effects to the panel; `EndEncounter` answered
with `Closed` as a spool would once it has sealed the encounter), and serves the socket.
`edge-recorder ctl` runs as a real process against it.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from gpiozero.pins.mock import MockFactory, MockPWMPin

from edge_recorder.config.model import ControlConfig, PanelConfig
from edge_recorder.control.server import ControlServer
from edge_recorder.encounter.controller import EncounterController, Limits, Outcome
from edge_recorder.encounter.events import (
    Closed,
    EndEncounter,
    Event,
    MicLost,
    OpenRecording,
)
from edge_recorder.panel.gpio import Panel, PanelEvent
from edge_recorder.panel.patterns import SOUNDS
from edge_recorder.panel.simulator import PanelSimulator
from edge_recorder.status import CommandRequest, CommandResult, DeviceStatus
from tests.integration.test_cli_ctl import ctl
from tests.integration.test_panel_gpio import wait_until

RED, GREEN, BLUE = 5, 6, 13


class Harness:
    """Routes button events, ctl commands and effects between the three parts."""

    def __init__(self, socket_path: Path, factory: MockFactory) -> None:
        self.loop = asyncio.get_running_loop()
        self.controller = EncounterController(Limits())
        self.opened: list[OpenRecording] = []
        self.ended: list[EndEncounter] = []
        panel_config = PanelConfig(
            pin_factory="mock",
            led="rgb",
            led_pins=[RED, GREEN, BLUE],
            privacy_button_pin=27,
            buzzer_pin=18,
            hold_action="pause",
            hold_time_s=0.2,
            bounce_time_s=0.0,  # the mock's taps last microseconds (debounce: test_panel_gpio)
        )
        self.panel_config = panel_config
        self.panel = Panel(panel_config, self.on_button, self.loop, pin_factory=factory)
        self.server = ControlServer(self, ControlConfig(socket=socket_path))

    def dispatch(self, event: Event) -> Outcome:
        return self.carry_out(self.controller.handle(event, self.loop.time()))

    def carry_out(self, outcome: Outcome) -> Outcome:
        for effect in outcome.effects:
            self.panel.apply(effect)
            if isinstance(effect, OpenRecording):
                self.opened.append(effect)
            elif isinstance(effect, EndEncounter):
                self.ended.append(effect)
                self.loop.call_soon(self.dispatch, Closed())  # the "spool" sealed it
        return outcome

    def on_button(self, event: PanelEvent) -> None:
        self.dispatch(event)

    async def execute(self, request: CommandRequest) -> CommandResult:  # CommandHandler
        outcome = self.controller.command(request, self.loop.time())
        return self.carry_out(outcome).to_result()

    def status(self) -> DeviceStatus:  # CommandHandler
        return self.controller.device_status(self.loop.time())


@pytest.fixture
async def harness(tmp_path: Path) -> AsyncIterator[tuple[Harness, MockFactory]]:
    factory = MockFactory(pin_class=MockPWMPin)
    wired = Harness(tmp_path / "ctl.sock", factory)
    await wired.server.start()
    yield wired, factory
    await wired.server.close()
    wired.panel.close()


async def test_press_records_with_solid_led_ctl_status_then_ctl_stop(
    harness: tuple[Harness, MockFactory],
) -> None:
    wired, factory = harness
    sock = str(wired.server.path)
    button, red = factory.pin(17), factory.pin(RED)

    button.drive_low()  # a tap on the record button
    button.drive_high()
    await wait_until(lambda: wired.controller.state == "recording")
    assert red.state == 1.0 and factory.pin(GREEN).state == 0 and factory.pin(BLUE).state == 0
    (opened,) = wired.opened
    assert opened.seq == 1

    status = await ctl("status", "--socket", sock)
    assert status.returncode == 0, status.stderr
    shown = json.loads(status.stdout)
    assert shown["state"] == "recording"
    assert shown["correlation_id"] == opened.correlation_id
    assert shown["recording_seq"] == 1 and "backlog" in shown and "mic" in shown

    stop = await ctl("stop", "--socket", sock)
    assert stop.returncode == 0, stop.stderr
    assert json.loads(stop.stdout)["state"] == "stopping"
    await wait_until(lambda: wired.controller.state == "idle")
    assert [e.reason for e in wired.ended] == ["stop"]
    # solid red from the press until the stop: on once, off once, nothing in between
    assert [s.state for s in red.states] == [False, 1.0, 0.0]
    assert factory.pin(GREEN).state == pytest.approx(0.1)  # idle: dim green

    again = await ctl("stop", "--socket", sock)
    assert again.returncode == 1 and "no encounter in progress" in again.stderr


async def test_ctl_start_with_context_then_hold_pause_privacy_resume_and_tap_stop(
    harness: tuple[Harness, MockFactory], tmp_path: Path
) -> None:
    wired, factory = harness
    sock = str(wired.server.path)
    context = tmp_path / "ctx.json"
    context.write_text(json.dumps({"correlation_id": "visit-123", "external_user_id": "dr-q"}))
    start = await ctl("start", "--socket", sock, "--context-json", str(context))
    assert start.returncode == 0, start.stderr
    assert json.loads(start.stdout)["data"] == {"correlation_id": "visit-123", "recording_seq": 1}
    assert factory.pin(RED).state == 1.0

    button = factory.pin(17)
    button.drive_low()  # held past hold_time: pause
    await wait_until(lambda: wired.controller.state == "paused")
    button.drive_high()
    await wait_until(lambda: len(factory.pin(RED).states) >= 4)  # paused: amber blinks

    factory.pin(27).drive_low()  # privacy button: resume
    await wait_until(lambda: wired.controller.state == "recording")
    factory.pin(27).drive_high()
    assert [o.seq for o in wired.opened] == [1, 2]
    assert {o.correlation_id for o in wired.opened} == {"visit-123"}
    assert factory.pin(RED).state == 1.0 and factory.pin(GREEN).state == 0

    busy = await ctl("start", "--socket", sock)
    assert busy.returncode == 1 and "already in progress" in busy.stderr

    button.drive_low()  # a tap while recording: stop
    button.drive_high()
    await wait_until(lambda: wired.controller.state == "idle")
    assert [(e.correlation_id, e.recordings, e.reason) for e in wired.ended] == [
        ("visit-123", 2, "stop")
    ]


async def test_an_alarm_beeps_and_the_beep_is_in_the_simulated_history(
    harness: tuple[Harness, MockFactory],
) -> None:
    """The buzzer is simulated like the LEDs: `sim led_history` returns its pin's timed
    states, so a test (or the demo) can hear an alarm without a speaker."""
    wired, factory = harness
    simulator = PanelSimulator(factory, wired.panel_config, lambda: [])
    start = await ctl("start", "--socket", str(wired.server.path))
    assert start.returncode == 0, start.stderr
    await wait_until(lambda: len(factory.pin(18).states) >= 3)  # the start beep has ended
    before = (await simulator.handle({"led_history": True})).data["buzzer"]
    assert [v for _, v in before] == [0.0, 1.0, 0.0]  # initial low, then the start beep

    alarm_at = wired.loop.time()
    wired.dispatch(MicLost("unplugged"))  # a fault while recording: the alarm cue
    await wait_until(lambda: len(factory.pin(18).states) >= 5)
    reply = await simulator.handle({"led_history": True})
    assert reply.ok
    history = reply.data["buzzer"]
    (rise, fall) = history[-2:]
    assert [rise[1], fall[1]] == [1.0, 0.0]
    assert rise[0] >= alarm_at - 0.01  # a beep after the alarm, not the start beep
    assert fall[0] - rise[0] >= SOUNDS["alarm"].on_s - 0.01  # the long alarm tone
    assert reply.data["now"] >= fall[0]
