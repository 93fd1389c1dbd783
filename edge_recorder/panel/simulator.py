"""Panel simulation over the control socket — only with gpiozero's mock pins.

The mock pins live inside the daemon process, so a test (or a demo without hardware) cannot
press them from outside. When the panel runs on the mock pin factory (`panel.pin_factory =
"mock"` or `GPIOZERO_PIN_FACTORY=mock`), and only then, the control socket also accepts:

    {"cmd": "sim", "press": "record" | "privacy", "hold_s": 0.0}
        drive the button's pin to its pressed level, keep it there `hold_s` seconds, release;
        the reply comes after the release.
    {"cmd": "sim", "led_history": true}
        every LED pin's timed states since start ([monotonic_s, value] pairs) and the
        indicator patterns the daemon asked for ([monotonic_s, pattern], the latest
        `recorder.INDICATOR_HISTORY`: the daemon keeps no more), and the buzzer pin's timed
        states (`buzzer`, [] without `panel.buzzer_pin`: a beep is a 1.0 then a 0.0), one clock.

On real pins (lgpio etc.) `sim` stays an unknown command, as on any production device.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Any

from edge_recorder.config.model import ControlConfig, PanelConfig
from edge_recorder.control.server import ControlServer
from edge_recorder.panel.gpio import PinFactory
from edge_recorder.status import CommandHandler, CommandResult
from edge_recorder.support.logs import get_logger

log = get_logger(__name__)
MAX_HOLD_S = 30.0


def is_mock(factory: PinFactory) -> bool:
    from gpiozero.pins.mock import MockFactory

    return isinstance(factory, MockFactory)


def pin_history(pin: Any) -> list[list[float]]:
    """A MockPin's states as [absolute monotonic time, value]; gpiozero stores each state
    with the time since the previous change, ending at `_last_change`."""
    states = list(pin.states)
    out: list[list[float]] = []
    t = float(pin._last_change)
    for state in reversed(states):
        out.append([t, float(state.state)])
        t -= float(state.timestamp)
    out.reverse()
    return out


class PanelSimulator:
    """Presses mock buttons and reads mock LED pins of one panel config."""

    def __init__(
        self,
        factory: PinFactory,
        config: PanelConfig,
        indicators: Callable[[], list[tuple[float, str]]],
    ) -> None:
        self._factory = factory
        self._config = config
        self._indicators = indicators

    async def handle(self, request: dict[str, Any]) -> CommandResult:
        press = request.get("press")
        if press is not None:
            return await self._press(press, request.get("hold_s", 0.0))
        if request.get("led_history"):
            pins = {str(n): pin_history(self._factory.pin(n)) for n in self._config.led_pins}
            indicators = [[t, name] for t, name in self._indicators()]
            buzzer = self._config.buzzer_pin
            beeps = [] if buzzer is None else pin_history(self._factory.pin(buzzer))
            data = {
                "pins": pins,
                "buzzer": beeps,
                "indicators": indicators,
                "now": time.monotonic(),
            }
            return CommandResult(ok=True, data=data)
        return CommandResult(
            ok=False, code="bad_request", error="sim needs 'press' or 'led_history'"
        )

    async def _press(self, which: Any, hold_s: Any) -> CommandResult:
        pins = {
            "record": self._config.record_button_pin,
            "privacy": self._config.privacy_button_pin,
        }
        if which not in pins:
            return CommandResult(ok=False, code="bad_request", error="press: record or privacy")
        number = pins[which]
        if number is None:
            return CommandResult(ok=False, code="no_button", error=f"no {which} button configured")
        if not isinstance(hold_s, int | float) or not 0 <= hold_s <= MAX_HOLD_S:
            return CommandResult(ok=False, code="bad_request", error=f"hold_s: 0-{MAX_HOLD_S:g}")
        pin = self._factory.pin(number)
        low = self._config.buttons_active_low
        log.info("sim button press", button=which, hold_s=hold_s)
        (pin.drive_low if low else pin.drive_high)()
        if hold_s:
            await asyncio.sleep(hold_s)  # the simulated finger stays on the button
        (pin.drive_high if low else pin.drive_low)()
        return CommandResult(ok=True, data={"pressed": which, "hold_s": hold_s})


class SimControlServer(ControlServer):
    """The control socket plus the `sim` command (see the module docstring)."""

    def __init__(
        self, handler: CommandHandler, config: ControlConfig, simulator: PanelSimulator
    ) -> None:
        super().__init__(handler, config)
        self._simulator = simulator

    async def _answer(self, line: bytes) -> CommandResult:
        try:
            obj = json.loads(line)
        except (ValueError, RecursionError):
            obj = None
        if isinstance(obj, dict) and obj.get("cmd") == "sim":
            try:
                return await self._simulator.handle(obj)
            except Exception as exc:
                log.error("sim command failed", error=type(exc).__name__)
                return CommandResult(ok=False, code="internal", error=str(exc))
        return await super()._answer(line)
