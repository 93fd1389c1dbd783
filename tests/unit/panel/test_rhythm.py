"""LED patterns run on the event loop's timers, not on a thread of their own (issue #24: an
offline device blinks "audio waiting" for hours, and a thread's wake-ups cost more)."""

from __future__ import annotations

import asyncio
import threading

from gpiozero.pins.mock import MockFactory, MockPWMPin

from edge_recorder.config.model import PanelConfig
from edge_recorder.panel.gpio import Panel
from tests.support.helpers import async_poll_until

RGB_PINS = [5, 6, 13]


async def test_a_blinking_pattern_needs_no_thread_and_stops_when_replaced() -> None:
    factory = MockFactory(pin_class=MockPWMPin)
    config = PanelConfig.model_validate(
        {"pin_factory": "mock", "led": "rgb", "led_pins": RGB_PINS, "record_button_pin": None}
    )
    panel = Panel(config, lambda _e: None, asyncio.get_running_loop(), pin_factory=factory,
                  time_scale=0.05)  # fmt: skip
    blue = factory.pin(RGB_PINS[2])
    try:
        before = set(threading.enumerate())
        panel.show("offline_buffering")  # a double blink: four steps a cycle
        await async_poll_until(lambda: len(blue.states) >= 9, what="two blink cycles")
        assert set(threading.enumerate()) <= before  # no thread started for the pattern
        rhythm = panel._rhythm
        assert rhythm is not None
        panel.show("idle")  # solid dim green: the blink's next step is cancelled
        assert rhythm._timer is None and panel._rhythm is None
        assert float(blue.state) == 0.0
    finally:
        panel.close()
