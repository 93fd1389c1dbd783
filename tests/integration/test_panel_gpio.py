"""The GPIO panel on gpiozero's MockFactory: real gpiozero, mock pins.

Buttons must reach the asyncio loop as controller events (from any thread), debounced; the
LED and buzzer pins' timed histories must match the documented table in panel_patterns.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
from collections.abc import Callable
from typing import Any

import pytest
from gpiozero.pins.mock import MockFactory, MockPWMPin

from edge_recorder.config.model import PanelConfig
from edge_recorder.encounter.events import (
    IndicatorName,
    PrivacyPressed,
    RecordHeld,
    RecordPressed,
)
from edge_recorder.panel.gpio import Panel, PanelError, make_pin_factory
from edge_recorder.panel.patterns import PANEL_KINDS, PATTERNS, SOUNDS, PanelKind

SCALE = 0.5  # patterns run at half their table durations here, to keep the suite short
RGB_PINS = (5, 6, 13)


class ManualClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


async def wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    """Poll with a deadline (the mock pins change on gpiozero's own threads)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        assert loop.time() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


def make_panel(
    events: asyncio.Queue[Any] | None = None,
    clock: Callable[[], float] | None = None,
    scale: float = SCALE,
    **overrides: Any,
) -> tuple[Panel, MockFactory]:
    factory = MockFactory(pin_class=MockPWMPin)
    config = PanelConfig.model_validate({"pin_factory": "mock", **overrides})
    queue: asyncio.Queue[Any] = events if events is not None else asyncio.Queue()
    extra: dict[str, Any] = {"clock": clock} if clock else {}
    panel = Panel(
        config,
        queue.put_nowait,
        asyncio.get_running_loop(),
        pin_factory=factory,
        time_scale=scale,
        **extra,
    )
    return panel, factory


async def test_press_from_a_gpio_thread_arrives_in_the_loop_thread() -> None:
    arrived: list[tuple[Any, int]] = []
    got = asyncio.Event()

    def emit(event: Any) -> None:
        arrived.append((event, threading.get_ident()))
        got.set()

    config = PanelConfig(pin_factory="mock")
    factory = MockFactory(pin_class=MockPWMPin)
    panel = Panel(config, emit, asyncio.get_running_loop(), pin_factory=factory)
    try:
        button = factory.pin(17)
        await asyncio.to_thread(button.drive_low)  # gpiozero calls back on that thread
        await asyncio.wait_for(got.wait(), 5)
        assert arrived == [(RecordPressed(), threading.get_ident())]
        button.drive_high()
    finally:
        panel.close()


async def test_bouncing_contacts_give_one_press() -> None:
    clock = ManualClock()
    events: asyncio.Queue[Any] = asyncio.Queue()
    panel, factory = make_panel(events, clock, bounce_time_s=0.05)
    button = factory.pin(17)
    try:
        for offset, level in [(0, 0), (0.003, 1), (0.006, 0), (0.3, 1), (0.305, 0), (0.31, 1)]:
            clock.now = 100.0 + offset  # press bounces, then release bounces
            button.drive_low() if level == 0 else button.drive_high()
        clock.now = 101.0
        button.drive_low()  # a real second press
        assert await asyncio.wait_for(events.get(), 5) == RecordPressed()
        assert await asyncio.wait_for(events.get(), 5) == RecordPressed()
        assert events.empty()  # events arrive in order: nothing else was sent in between
        button.drive_high()
    finally:
        panel.close()


def marker(events: asyncio.Queue[Any]) -> str:
    """Queue a marker behind anything the panel has sent so far (the hand-over is FIFO)."""
    asyncio.get_running_loop().call_soon_threadsafe(events.put_nowait, "marker")
    return "marker"


async def test_hold_pauses_and_a_held_release_is_not_a_press() -> None:
    events: asyncio.Queue[Any] = asyncio.Queue()
    panel, factory = make_panel(events, hold_action="pause", hold_time_s=0.05)
    button = factory.pin(17)
    try:
        button.drive_low()
        assert await asyncio.wait_for(events.get(), 5) == RecordHeld()
        button.drive_high()  # releasing after a hold does nothing more
        expected = marker(events)
        assert await asyncio.wait_for(events.get(), 5) == expected
    finally:
        panel.close()


async def test_a_hold_counts_from_its_own_press_and_buttons_start_no_threads() -> None:
    # a tap arms a hold timer; pressing again must not let that stale timer fire early
    events: asyncio.Queue[Any] = asyncio.Queue()
    clock = ManualClock()
    threads_before = threading.active_count()
    panel, factory = make_panel(events, clock, hold_action="pause", hold_time_s=0.4)
    assert threading.active_count() == threads_before  # no polling hold thread per button
    button = factory.pin(17)
    loop = asyncio.get_running_loop()
    try:
        button.drive_low()
        clock.now += 0.2
        button.drive_high()
        assert await asyncio.wait_for(events.get(), 5) == RecordPressed()
        clock.now += 0.2
        second_press = loop.time()
        button.drive_low()
        assert await asyncio.wait_for(events.get(), 5) == RecordHeld()
        assert loop.time() - second_press >= 0.4  # timed from the second press
        clock.now += 0.2
        button.drive_high()  # releasing after the hold is not a tap
        expected = marker(events)
        assert await asyncio.wait_for(events.get(), 5) == expected
    finally:
        panel.close()


async def test_with_a_hold_action_a_tap_acts_on_release() -> None:
    events: asyncio.Queue[Any] = asyncio.Queue()
    clock = ManualClock()
    panel, factory = make_panel(events, clock, hold_action="pause", hold_time_s=5)
    button = factory.pin(17)
    try:
        button.drive_low()
        expected = marker(events)  # not yet
        assert await asyncio.wait_for(events.get(), 5) == expected
        clock.now += 0.2
        button.drive_high()
        assert await asyncio.wait_for(events.get(), 5) == RecordPressed()
        expected = marker(events)
        assert await asyncio.wait_for(events.get(), 5) == expected
    finally:
        panel.close()


async def test_privacy_button_and_active_high_buttons() -> None:
    events: asyncio.Queue[Any] = asyncio.Queue()
    panel, factory = make_panel(events, privacy_button_pin=27, buttons_active_low=False)
    try:
        factory.pin(27).drive_high()  # active-high: high is pressed
        assert await asyncio.wait_for(events.get(), 5) == PrivacyPressed()
        factory.pin(17).drive_high()
        assert await asyncio.wait_for(events.get(), 5) == RecordPressed()
        factory.pin(27).drive_low()
        factory.pin(17).drive_low()
    finally:
        panel.close()


def phase_ok(measured: list[float], expected: float, slack: float) -> None:
    """Threads only ever wake late, so no phase may be shorter than the table; and at least
    one must be close to it (a loaded machine delays some wake-ups, rarely all of them)."""
    assert measured, "no phase measured"
    assert min(measured) >= expected - 0.01, (measured, expected)
    assert min(measured) <= expected + slack + 0.1 * expected, (measured, expected)


def pin_cycle(steps: list[tuple[Any, float]], channel: int | None) -> list[tuple[float, float]]:
    """One pin's cycle from the table's steps: (value, seconds), equal neighbours merged."""
    cycle: list[tuple[float, float]] = []
    for value, seconds in steps:
        level = float(value[channel] if channel is not None else value)
        if cycle and cycle[-1][0] == level:
            cycle[-1] = (level, cycle[-1][1] + seconds)
        else:
            cycle.append((level, seconds))
    assert len(cycle) == 1 or cycle[-1][0] != cycle[0][0], "a cycle must not wrap a phase"
    return cycle


def follows_cycle(pin: Any, cycle: list[tuple[float, float]]) -> None:
    """From its first change on, the pin steps through `cycle` in order, staying in each
    step as long as the table says (step k of every repetition timed together)."""
    states = list(pin.states)[1:]  # [0] is the initial state
    values = [float(s.state) for s in states]
    assert values == [pytest.approx(cycle[i % len(cycle)][0]) for i in range(len(values))], (
        values,
        cycle,
    )
    phases: dict[int, list[float]] = {k: [] for k in range(len(cycle))}
    for i, (_, after) in enumerate(itertools.pairwise(states)):
        phases[i % len(cycle)].append(after.timestamp)
    assert all(len(p) >= 2 for p in phases.values()), states
    for k, (_, seconds) in enumerate(cycle):
        phase_ok(phases[k], seconds * SCALE, slack=0.03)


def solid_at(pin: Any, value: float) -> None:
    assert float(pin.state) == pytest.approx(value)
    assert len(pin.states) <= 2, pin.states  # at most the one change made by show()


async def test_every_pattern_matches_the_table() -> None:
    """One panel per pattern and LED kind, all running at once (so the test takes about two
    cycles of the slowest pattern); every pin's history is held to the table's steps —
    single, double and triple blinks and the PWM LED's breathing alike."""
    panels: list[tuple[PanelKind, IndicatorName, Panel, MockFactory]] = []
    try:
        for kind in PANEL_KINDS:
            pins = list(RGB_PINS) if kind == "rgb" else [RGB_PINS[0]]
            for name in PATTERNS:
                panel, factory = make_panel(led=kind, led_pins=pins, record_button_pin=None)
                panels.append((kind, name, panel, factory))
        for _, name, panel, _ in panels:
            panel.show(name)
        checks: list[tuple[str, Any, list[tuple[float, float]]]] = []
        for kind, name, _, factory in panels:
            steps = PATTERNS[name].look(kind).steps()
            if kind == "single":
                steps = [(float(value > 0), seconds) for value, seconds in steps]  # type: ignore[operator]
            channels: list[int | None] = [0, 1, 2] if kind == "rgb" else [None]
            for channel in channels:
                pin_no = RGB_PINS[channel or 0]
                cycle = pin_cycle(steps, channel)
                checks.append((f"{kind}/{name}/pin{pin_no}", factory.pin(pin_no), cycle))
        blinking = [(pin, len(cycle)) for _, pin, cycle in checks if len(cycle) > 1]
        await wait_until(lambda: all(len(pin.states) >= 2 + 2 * n for pin, n in blinking))
        for label, pin, cycle in checks:
            try:
                if len(cycle) == 1:
                    solid_at(pin, cycle[0][0])
                else:
                    follows_cycle(pin, cycle)
            except AssertionError as exc:
                raise AssertionError(f"{label}: {exc}") from None
    finally:
        for _, _, panel, _ in panels:
            panel.close()


async def test_recording_light_never_goes_off_across_overlays() -> None:
    panel, factory = make_panel(led="rgb", led_pins=list(RGB_PINS))
    red, green, blue = (factory.pin(p) for p in RGB_PINS)
    try:
        panel.show("recording")
        for overlay, pin in [
            ("recording_warning", green),
            ("recording_alarm", blue),
            ("recording_identify", green),
        ]:
            start = len(pin.states)
            panel.show(overlay)
            await wait_until(lambda pin=pin, start=start: len(pin.states) >= start + 3)
        panel.show("recording")
        assert [s.state for s in red.states] == [False, 1.0]  # switched on once, never off
        panel.show("paused")  # capture stopped: now it may blink
        await wait_until(lambda: len(red.states) >= 3)
        assert red.states[2].state == 0.0
    finally:
        panel.close()


async def test_active_low_led_pins_are_inverted() -> None:
    panel, factory = make_panel(led="single", led_pins=[5], led_active_high=False)
    try:
        panel.show("recording")
        assert factory.pin(5).state == 0  # lit means pulled low
        panel.show("idle")  # a blip: lit (low) first, then dark (high)
        await wait_until(lambda: factory.pin(5).state == 1)
    finally:
        panel.close()


async def test_buzzer_plays_each_cue_from_the_table() -> None:
    """At full table durations: a cue has few beeps, so each one is held to the table."""
    panels = {cue: make_panel(buzzer_pin=18, scale=1.0) for cue in SOUNDS}
    try:
        for cue, (panel, _) in panels.items():
            panel.play(cue)
        pins = {cue: factory.pin(18) for cue, (_, factory) in panels.items()}
        # each beep is a rise and a fall; the cue ends low
        await wait_until(
            lambda: all(len(pins[c].states) >= 1 + 2 * SOUNDS[c].count for c in SOUNDS)
        )
        for cue, pin in pins.items():
            beeps = SOUNDS[cue]
            states = list(pin.states)[1:]
            assert [s.state for s in states] == [1.0, 0.0] * beeps.count
            for before, after in itertools.pairwise(states):
                expected = beeps.on_s if before.state else beeps.off_s
                phase_ok([after.timestamp], expected, slack=0.08)
    finally:
        for panel, _ in panels.values():
            panel.close()


async def test_apply_routes_indicator_and_sound_effects_only() -> None:
    from edge_recorder.encounter.events import Indicator, OpenRecording, Sound

    panel, factory = make_panel(led="single", led_pins=[5], buzzer_pin=18)
    try:
        panel.apply(OpenRecording("c", 1, "g"))
        assert panel.current is None and factory.pin(5).state == 0
        panel.apply(Indicator("recording"))
        panel.apply(Sound("start"))
        assert panel.current == "recording" and factory.pin(5).state == 1
        await wait_until(lambda: len(factory.pin(18).states) >= 3)
    finally:
        panel.close()


async def test_setup_errors_are_clear_and_release_the_pins() -> None:
    factory = MockFactory(pin_class=MockPWMPin)
    loop = asyncio.get_running_loop()
    bad = PanelConfig(pin_factory="mock", led="single", led_pins=[40])  # not on this board
    with pytest.raises(PanelError, match=r"GPIO pin\(s\) \[40\] for LED"):
        Panel(bad, print, loop, pin_factory=factory)
    good = Panel(PanelConfig(pin_factory="mock"), print, loop, pin_factory=factory)
    good.close()  # the record button pin 17 was released by the failed setup
    good.close()  # and closing twice is harmless
    bare = Panel(
        PanelConfig(pin_factory="mock", led="none", led_pins=[], record_button_pin=None),
        print,
        loop,
        pin_factory=(empty := MockFactory(pin_class=MockPWMPin)),
    )
    bare.show("recording")  # no LED, no buzzer: nothing to drive, nothing fails
    bare.play("start")
    assert bare.current == "recording" and not empty.pins
    bare.close()
    assert make_pin_factory("auto", environ={}) is None  # gpiozero picks


def test_pin_factory_from_the_environment_wins_and_mock_is_pwm_capable() -> None:
    from_env = make_pin_factory("lgpio", environ={"GPIOZERO_PIN_FACTORY": "mock"})
    assert isinstance(from_env, MockFactory) and from_env.pin_class is MockPWMPin
    plain = make_pin_factory(
        "auto", {"GPIOZERO_PIN_FACTORY": "mock", "GPIOZERO_MOCK_PIN_CLASS": "mockpin"}
    )
    assert plain.pin_class is not MockPWMPin
    with pytest.raises(PanelError, match="unknown GPIO pin factory 'pigpiox'"):
        make_pin_factory("auto", {"GPIOZERO_PIN_FACTORY": "pigpiox"})
