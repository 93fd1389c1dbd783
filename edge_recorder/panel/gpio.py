"""The wall unit's buttons, LEDs and buzzer, through gpiozero.

Buttons turn into controller events (`RecordPressed`, `RecordHeld`, `PrivacyPressed`) that
are handed to the asyncio loop with `call_soon_threadsafe`, because gpiozero calls back on its
own threads. The LEDs and buzzer only ever show what the controller asked for (`Indicator`,
`Sound` effects) using the table in `panel.patterns`, so the light follows the real state.

Buttons are debounced twice: by the pin factory (`bounce_time`, where the back end supports
it) and here, by ignoring any edge that follows the previous edge within `bounce_time_s` —
the mock and some back ends do not debounce, and a bouncing release must never read as a
second press (that would stop an encounter just started). With `hold_action = "pause"` a
short press acts on release, so a hold is never mistaken for a press first.

Buttons are gpiozero `DigitalInputDevice`s, not `Button`s: every `Button` starts a hold
thread that wakes ten times a second for its whole life, pressed or not. The hold is timed
here instead, with one loop timer armed on press and cancelled on release.
"""

from __future__ import annotations

import asyncio
import importlib
import os
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from edge_recorder.config.model import PanelConfig
from edge_recorder.encounter.events import (
    Effect,
    Indicator,
    IndicatorName,
    PrivacyPressed,
    RecordHeld,
    RecordPressed,
    Sound,
    SoundName,
)
from edge_recorder.panel.patterns import PATTERNS, SOUNDS
from edge_recorder.support.logs import get_logger

log = get_logger(__name__)

PanelEvent = RecordPressed | RecordHeld | PrivacyPressed
_FACTORIES = {
    "lgpio": ("gpiozero.pins.lgpio", "LGPIOFactory"),
    "rpigpio": ("gpiozero.pins.rpigpio", "RPiGPIOFactory"),
    "native": ("gpiozero.pins.native", "NativeFactory"),
    "pigpio": ("gpiozero.pins.pigpio", "PiGPIOFactory"),  # only via GPIOZERO_PIN_FACTORY
}


class PanelError(Exception):
    """The GPIO back end or a pin could not be set up; the message says which and why."""


class PanelOutput(Protocol):
    """What the daemon needs from a panel: show patterns, play cues, let go of the pins."""

    def apply(self, effect: Effect) -> None: ...

    def close(self) -> None: ...


class NullPanel:
    """No panel (`panel.enabled = false`): effects are ignored."""

    def apply(self, effect: Effect) -> None:
        return None

    def close(self) -> None:
        return None


class PinFactory(Protocol):
    """The part of a gpiozero pin factory the daemon and the simulator use (gpiozero ships
    no type information)."""

    def close(self) -> None: ...

    def pin(self, spec: int) -> Any: ...


def make_pin_factory(kind: str, environ: Mapping[str, str] | None = None) -> PinFactory | None:
    """The gpiozero pin factory: `GPIOZERO_PIN_FACTORY` if set (as gpiozero and `devices`
    do), else `panel.pin_factory`; None lets gpiozero choose ('auto')."""
    env = os.environ if environ is None else environ
    requested = env.get("GPIOZERO_PIN_FACTORY") or kind
    if requested == "auto":
        return None
    if requested == "mock":
        from gpiozero.pins.mock import MockFactory, MockPWMPin

        # PWM-capable by default, so 'pwm' and 'rgb' LEDs work in simulation too
        mock: PinFactory = MockFactory(pin_class=env.get("GPIOZERO_MOCK_PIN_CLASS") or MockPWMPin)
        return mock
    if requested not in _FACTORIES:
        raise PanelError(f"unknown GPIO pin factory {requested!r}")
    module_name, class_name = _FACTORIES[requested]
    try:
        factory: PinFactory = getattr(importlib.import_module(module_name), class_name)()
        return factory
    except Exception as exc:  # ImportError, no /dev/gpiochip, not a Pi...
        raise PanelError(f"GPIO pin factory '{requested}' is not available here: {exc}") from exc


class _Debouncer:
    """Accepts an edge only if the previous edge (accepted or not) is `bounce_s` old."""

    def __init__(self, bounce_s: float, clock: Callable[[], float]) -> None:
        self._bounce_s = bounce_s
        self._clock = clock
        self._last = float("-inf")

    def accept(self) -> bool:
        now = self._clock()
        ok = now - self._last >= self._bounce_s
        self._last = now
        return ok


class _Rhythm:
    """Repeats one cycle of (value, seconds) steps on an LED, until stopped. gpiozero's
    `blink` only knows on/off/on/off; a double or triple blink and a dim breath need steps
    of their own. Driven by the event loop's timers, not a thread of its own: each step is
    one wake-up either way, and on the loop it is one cheaper hand-off (issue #24: an
    offline device blinks "audio waiting" for hours). Like gpiozero, each step waits after
    its write, so a late wake-up lengthens a phase and never shortens the next."""

    def __init__(
        self, led: Any, steps: list[tuple[Any, float]], loop: asyncio.AbstractEventLoop
    ) -> None:
        self._led = led
        self._steps = steps
        self._loop = loop
        self._next = 0
        self._timer: asyncio.TimerHandle | None = None
        self._step()

    def _step(self) -> None:
        value, seconds = self._steps[self._next]
        self._next = (self._next + 1) % len(self._steps)
        try:
            self._led.value = value
        except Exception as exc:  # a pin that fails stops the pattern, not the loop
            log.warning("LED pattern stopped: the pin cannot be set", error=str(exc))
            self._timer = None
            return
        self._timer = self._loop.call_later(seconds, self._step)

    def stop(self) -> None:
        """No step runs after this returns (the caller writes next). Loop thread."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


class Panel:
    """Buttons in, lights and sounds out. Build it in the loop thread; call `apply` there."""

    def __init__(
        self,
        config: PanelConfig,
        emit: Callable[[PanelEvent], None],
        loop: asyncio.AbstractEventLoop,
        *,
        pin_factory: Any = None,
        time_scale: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """`pin_factory` overrides `config.pin_factory` (tests pass their MockFactory);
        `time_scale` shortens every pattern and cue (tests and the demo)."""
        self._config = config
        self._emit = emit
        self._loop = loop
        self._scale = time_scale
        self._own_factory = pin_factory is None
        self._factory = (
            pin_factory if pin_factory is not None else (make_pin_factory(config.pin_factory))
        )
        self._devices: list[Any] = []
        self._record_bounce = _Debouncer(config.bounce_time_s, clock)
        self._privacy_bounce = _Debouncer(config.bounce_time_s, clock)
        self._down = False
        self._held = False
        self._press = 0  # counts presses: a hold timer only fires for the press that armed it
        self._hold_timer: asyncio.TimerHandle | None = None
        self._button_lock = threading.Lock()  # edges (gpiozero threads) vs the hold (loop)
        self.current: IndicatorName | None = None
        self._rhythm: _Rhythm | None = None
        try:
            self._setup()
        except PanelError:
            self.close()
            raise
        except Exception as exc:  # gpiozero raises many types: pin in use, bad pin, no GPIO
            self.close()
            raise PanelError(f"GPIO panel setup failed: {exc}") from exc

    # --- construction ----------------------------------------------------------------------

    def _setup(self) -> None:
        from gpiozero import LED, PWMLED, RGBLED, Buzzer, DigitalInputDevice

        cfg, factory = self._config, self._factory
        bounce = cfg.bounce_time_s or None
        if cfg.record_button_pin is not None:
            button = self._add(
                DigitalInputDevice,
                cfg.record_button_pin,
                pull_up=cfg.buttons_active_low,
                bounce_time=bounce,
                pin_factory=factory,
            )
            button.when_activated = self._record_down
            button.when_deactivated = self._record_up
        if cfg.privacy_button_pin is not None:
            privacy = self._add(
                DigitalInputDevice,
                cfg.privacy_button_pin,
                pull_up=cfg.buttons_active_low,
                bounce_time=bounce,
                pin_factory=factory,
            )
            privacy.when_activated = self._privacy_down
        kinds: dict[str, Any] = {"single": LED, "pwm": PWMLED}
        self._led: Any = None
        if cfg.led == "rgb":
            self._led = self._add(
                RGBLED, *cfg.led_pins, active_high=cfg.led_active_high, pin_factory=factory
            )
        elif cfg.led in kinds:
            self._led = self._add(
                kinds[cfg.led],
                cfg.led_pins[0],
                active_high=cfg.led_active_high,
                pin_factory=factory,
            )
        self._buzzer: Any = None
        if cfg.buzzer_pin is not None:
            self._buzzer = self._add(Buzzer, cfg.buzzer_pin, pin_factory=factory)

    def _add(self, cls: Any, *pins: int, **kwargs: Any) -> Any:
        try:
            device = cls(*pins, **kwargs)
        except Exception as exc:
            name = cls.__name__
            raise PanelError(f"cannot use GPIO pin(s) {list(pins)} for {name}: {exc}") from exc
        self._devices.append(device)
        return device

    # --- buttons (gpiozero threads) -------------------------------------------------------

    def _record_down(self) -> None:
        with self._button_lock:
            if not self._record_bounce.accept():
                return
            self._down, self._held = True, False
            self._press += 1
            press = self._press
        if self._config.hold_action == "none":
            self._send(RecordPressed())
        else:
            self._call_in_loop(self._arm_hold, press)

    def _record_up(self) -> None:
        with self._button_lock:
            if not self._record_bounce.accept() or not self._down:
                return
            self._down = False
            tap = not self._held
        if self._config.hold_action == "pause" and tap:
            self._send(RecordPressed())

    def _arm_hold(self, press: int) -> None:
        """Loop thread: the hold fires `hold_time_s` after the press unless released first."""
        if self._hold_timer is not None:
            self._hold_timer.cancel()
        self._hold_timer = self._loop.call_later(self._config.hold_time_s, self._record_held, press)

    def _record_held(self, press: int) -> None:
        self._hold_timer = None
        with self._button_lock:
            if press != self._press or not self._down or self._held:
                return  # released (or pressed again) before the hold time was up
            self._held = True
        self._send(RecordHeld())

    def _privacy_down(self) -> None:
        if self._privacy_bounce.accept():
            self._send(PrivacyPressed())

    def _send(self, event: PanelEvent) -> None:
        log.info("button", event=type(event).__name__)
        self._call_in_loop(self._emit, event)

    def _call_in_loop(self, callback: Callable[[Any], None], arg: Any) -> None:
        try:
            self._loop.call_soon_threadsafe(callback, arg)
        except RuntimeError:  # the loop is closed: the daemon is shutting down
            log.warning("button event dropped: event loop closed", event=type(arg).__name__)

    # --- outputs (loop thread) --------------------------------------------------------------

    def apply(self, effect: Effect) -> None:
        """Carry out `Indicator` and `Sound` effects; every other effect is not ours."""
        if isinstance(effect, Indicator):
            self.show(effect.pattern)
        elif isinstance(effect, Sound):
            self.play(effect.cue)

    def show(self, name: IndicatorName) -> None:
        pattern = PATTERNS[name]
        self.current = name
        if self._led is None:
            return
        self._stop_rhythm()
        kind = self._config.led
        look = pattern.mono if kind == "none" else pattern.look(kind)
        steps = [(self._level(value), seconds * self._scale) for value, seconds in look.steps()]
        if len(steps) == 1:
            self._led.value = steps[0][0]
        else:
            self._rhythm = _Rhythm(self._led, steps, self._loop)

    def _level(self, value: Any) -> Any:
        """A table value as this LED takes it: a colour, a PWM level, or on/off."""
        if self._config.led == "single":
            return value > 0
        return value

    def _stop_rhythm(self) -> None:
        if self._rhythm is not None:
            self._rhythm.stop()
            self._rhythm = None

    def play(self, cue: SoundName) -> None:
        if self._buzzer is None:
            return
        beeps = SOUNDS[cue]
        self._buzzer.beep(
            on_time=beeps.on_s * self._scale, off_time=beeps.off_s * self._scale, n=beeps.count
        )

    def close(self) -> None:
        """Release every pin (LEDs go dark), and the pin factory if we made it. Idempotent."""
        if self._hold_timer is not None:
            self._hold_timer.cancel()
            self._hold_timer = None
        self._stop_rhythm()
        closing = list(reversed(self._devices))
        self._devices.clear()
        if self._own_factory and self._factory is not None:
            closing.append(self._factory)
            self._factory = None
        for device in closing:
            try:
                device.close()
            except Exception as exc:  # closing must not stop the shutdown
                log.warning("closing a GPIO device failed", error=str(exc))
