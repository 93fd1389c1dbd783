"""What the LEDs and the buzzer show for each controller indicator: the documented table.

Pure data (no gpiozero), rendered into docs/operations.md by `markdown_table()`, drawn into
hardware/panel-legend.svg by devtools/panel_legend.py, and checked by tests.
The rule the table is built around: **while audio is captured the recording light is on, and
it never blinks off** — a patient must always be able to see that the room is recorded. Any
overlay while recording (warning, alarm, identify) only adds colour on an RGB LED (the red
channel stays lit) and leaves a single/PWM LED solid; the buzzer carries the news instead.
Conversely, a single/PWM LED is never solid-on unless audio is captured, and never plain off
while the daemon runs (a dark LED reads as a dead device).

The second rule is that a clinician tells the states apart *at a glance*, on every panel type
(`PANEL_KINDS`): two states must differ in colour, steady vs blinking, rhythm (one, two or three
flashes per cycle, or breathing) or a blink rate at least twice as fast. `glance()` extracts those
features from the table and `tell_apart()` compares them; tests/unit/panel/test_glance.py holds
every pair to it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from edge_recorder.encounter.events import IndicatorName, SoundName

Color = tuple[float, float, float]
OFF: Color = (0.0, 0.0, 0.0)
RED: Color = (1.0, 0.0, 0.0)
AMBER: Color = (1.0, 0.35, 0.0)
MAGENTA: Color = (1.0, 0.0, 0.8)
WHITE: Color = (1.0, 1.0, 1.0)
BLUE: Color = (0.0, 0.0, 1.0)
GREEN: Color = (0.0, 1.0, 0.0)
DIM_GREEN: Color = (0.0, 0.1, 0.0)

PanelKind = Literal["single", "pwm", "rgb"]
PANEL_KINDS: tuple[PanelKind, ...] = ("single", "pwm", "rgb")
FADE_FPS = 25  # steps per second of a breathing ramp (as gpiozero's own fades)

Step = tuple[float | Color, float]  # (value written to the LED, seconds held)


def _cycle(on: float | Color, off: float | Color, on_s: float, off_s: float, count: int,
           rest_s: float) -> list[Step]:  # fmt: skip
    steps: list[Step] = []
    for i in range(count):
        steps += [(on, on_s), (off, off_s + (rest_s if i == count - 1 else 0.0))]
    return steps


@dataclass(frozen=True)
class Light:
    """An RGB LED: `on` for `on_s`, then `off` for `off_s`, `count` times per cycle, the
    last `off` stretched by `rest_s` (so count=2 is a double blink); `off_s == 0` = solid."""

    on: Color
    off: Color = OFF
    on_s: float = 0.0
    off_s: float = 0.0
    count: int = 1
    rest_s: float = 0.0

    @property
    def solid(self) -> bool:
        return self.off_s == 0 or self.on == self.off

    @property
    def period_s(self) -> float:
        return self.count * (self.on_s + self.off_s) + self.rest_s

    def steps(self) -> list[Step]:
        """One cycle as (colour, seconds) steps, for the LED driver to repeat."""
        if self.solid:
            return [(self.on, 0.0)]
        return _cycle(self.on, self.off, self.on_s, self.off_s, self.count, self.rest_s)


@dataclass(frozen=True)
class Mono:
    """A single-colour LED: solid at `level` (0 = off), or blinking on/off like `Light`.
    `fade` makes it breathe (ramp up for `on_s`, down for `off_s`, peak `level`): only a
    PWM LED can; `Pattern.single` must then give a single LED its own look."""

    level: float = 0.0
    on_s: float = 0.0
    off_s: float = 0.0
    count: int = 1
    rest_s: float = 0.0
    fade: bool = False

    @property
    def solid(self) -> bool:
        return self.off_s == 0

    @property
    def period_s(self) -> float:
        return self.count * (self.on_s + self.off_s) + self.rest_s

    def steps(self) -> list[Step]:
        """One cycle as (level, seconds) steps; a fade is a ramp of `FADE_FPS` steps/s."""
        if self.solid:
            return [(self.level, 0.0)]
        if self.fade:
            up = max(1, round(self.on_s * FADE_FPS))
            down = max(1, round(self.off_s * FADE_FPS))
            rise = [(self.level * (i + 1) / up, self.on_s / up) for i in range(up)]
            fall = [(self.level * (down - 1 - i) / down, self.off_s / down) for i in range(down)]
            return [*rise, *fall]
        return _cycle(self.level, 0.0, self.on_s, self.off_s, self.count, self.rest_s)


@dataclass(frozen=True)
class Pattern:
    meaning: str
    rgb: Light
    mono: Mono  # a PWM LED, and a single LED unless `single` is given
    capturing: bool = False  # audio is being recorded while this shows
    single: Mono | None = None  # a single (on/off) LED's look, where `mono` needs PWM

    def look(self, kind: PanelKind) -> Light | Mono:
        if kind == "rgb":
            return self.rgb
        if kind == "single" and self.single is not None:
            return self.single
        return self.mono


@dataclass(frozen=True)
class Beeps:
    """`count` beeps of `on_s` separated by `off_s`, played once."""

    on_s: float
    off_s: float
    count: int


PATTERNS: dict[IndicatorName, Pattern] = {
    "idle": Pattern(
        "ready; nothing waiting",
        Light(DIM_GREEN),
        Mono(0.3, 2.0, 2.0, fade=True),  # slow, dim breathing
        single=Mono(1.0, 0.1, 3.9),  # a short blip every 4 s: alive, ready
    ),
    "recording": Pattern("recording", Light(RED), Mono(1.0), capturing=True),
    "recording_warning": Pattern(
        "recording; it will close soon (maximum length or no speech)",
        Light(AMBER, RED, 0.5, 0.5),
        Mono(1.0),
        capturing=True,
    ),
    "recording_alarm": Pattern(
        "recording, but something is wrong (silent mic, spool nearly full, service refusing)",
        Light(MAGENTA, RED, 0.25, 0.25),
        Mono(1.0),
        capturing=True,
    ),
    "recording_identify": Pattern(
        "recording; identify requested", Light(WHITE, RED, 0.1, 0.1), Mono(1.0), capturing=True
    ),
    "paused": Pattern(
        "encounter paused: not recording", Light(AMBER, OFF, 1.0, 1.0), Mono(1.0, 1.0, 1.0)
    ),
    "stopping": Pattern(
        "closing the encounter", Light(BLUE), Mono(1.0, 0.15, 0.2, count=2, rest_s=0.3)
    ),
    "delivering": Pattern(
        "idle; sending recorded audio", Light(GREEN, OFF, 0.5, 0.5), Mono(1.0, 0.5, 0.5)
    ),
    "offline_buffering": Pattern(
        "idle; audio kept safely until the network is back",
        Light(BLUE, OFF, 0.15, 0.2, count=2, rest_s=1.3),
        Mono(1.0, 0.15, 0.2, count=2, rest_s=1.3),
    ),
    "warning": Pattern(
        "paused encounter will close soon (no activity)",
        Light(AMBER, OFF, 0.25, 0.25),
        Mono(1.0, 0.25, 0.25),
    ),
    "error": Pattern(
        "cannot record: no mic, spool full or service refusing (see ctl status)",
        Light(RED, OFF, 0.125, 0.125),
        Mono(1.0, 0.125, 0.125),
    ),
    "identify": Pattern(
        "identify this device",
        Light(WHITE, OFF, 0.1, 0.15, count=3, rest_s=1.25),
        Mono(1.0, 0.1, 0.15, count=3, rest_s=1.25),
    ),
}

SOUNDS: dict[SoundName, Beeps] = {
    "start": Beeps(0.1, 0.0, 1),
    "pause": Beeps(0.1, 0.1, 2),
    "stop": Beeps(0.4, 0.0, 1),
    "warning": Beeps(0.1, 0.1, 3),
    "alarm": Beeps(0.8, 0.0, 1),
    "identify": Beeps(0.3, 0.2, 3),
    "refused": Beeps(0.05, 0.05, 4),
}

# --- at a glance ------------------------------------------------------------------------------

LIT: Color = WHITE  # a one-colour LED's colour, whatever the part: only lit vs dark counts
RHYTHMS = {1: "single", 2: "double", 3: "triple"}
# The states that error must not share a rhythm with: colour alone does not tell a red 4 Hz
# blink from an amber one to a colour-blind clinician or in a bright room.
WARNINGS: tuple[IndicatorName, ...] = ("paused", "warning", "recording_warning", "recording_alarm")


@dataclass(frozen=True)
class Glance:
    """What a person sees without timing anything: the colours, the rhythm (steady, single,
    double or triple flashes, breathing) and how often it repeats."""

    colours: frozenset[Color]
    rhythm: str
    rate_hz: float  # cycles per second; 0 when steady


def glance(name: IndicatorName, kind: PanelKind) -> Glance:
    look = PATTERNS[name].look(kind)
    if isinstance(look, Light):
        if look.solid:
            return Glance(frozenset({look.on}), "steady", 0.0)
        return Glance(frozenset({look.on, look.off}), RHYTHMS[look.count], 1 / look.period_s)
    if look.solid:
        return Glance(frozenset({LIT if look.level > 0 else OFF}), "steady", 0.0)
    rhythm = "breathing" if look.fade else RHYTHMS[look.count]
    return Glance(frozenset({LIT, OFF}), rhythm, 1 / look.period_s)


def tell_apart(a: Glance, b: Glance) -> bool:
    """Different colours, a different rhythm, or one repeating at least twice as fast."""
    if a.colours != b.colours or a.rhythm != b.rhythm:
        return True
    slow, fast = sorted((a.rate_hz, b.rate_hz))
    return slow > 0 and fast / slow >= 2.0 - 1e-9


def must_tell_apart(a: IndicatorName, b: IndicatorName, kind: PanelKind) -> bool:
    """Every pair, except the recording overlays on a one-colour LED: that light stays
    steady on while audio is captured (the patient's guarantee), so there the buzzer
    announces a warning or an alarm and `ctl status` names it."""
    both_capturing = PATTERNS[a].capturing and PATTERNS[b].capturing
    return a != b and not (kind != "rgb" and both_capturing)


# --- words ------------------------------------------------------------------------------------


def _color_name(color: Color) -> str:
    names = {
        OFF: "off",
        RED: "red",
        AMBER: "amber",
        MAGENTA: "magenta",
        WHITE: "white",
        BLUE: "blue",
        GREEN: "green",
        DIM_GREEN: "dim green",
    }
    return names.get(color, str(color))


def describe(look: Light | Mono) -> str:
    """A look in words: `solid red`, `double blink blue every 2 s`, `breathing (dim) 4 s`."""
    if isinstance(look, Light):
        on, other = _color_name(look.on), _color_name(look.off)
        if look.solid:
            return "off" if look.on == OFF else f"solid {on}"
    else:
        on, other = "", "off"
        if look.solid:
            if look.level == 0:
                return "off"
            return "on" if look.level >= 1 else f"on at {look.level:g}"
        if look.fade:
            dim = " (dim)" if look.level < 1 else ""
            return f"breathing{dim}, {look.period_s:g} s"
    colour = f" {on}" if on else ""
    if look.count > 1:
        return f"{RHYTHMS[look.count]} blink{colour} every {look.period_s:g} s"
    if look.off_s >= 4 * look.on_s and not on:
        return f"blip {look.on_s:g} s every {look.period_s:g} s"
    rate = f"{1 / look.period_s:.2g}".rstrip(".")
    return f"{on or 'on'} {look.on_s:g} s / {other} {look.off_s:g} s ({rate} Hz)"


def markdown_table() -> str:
    """The state → pattern table as Markdown, for docs/operations.md."""
    lines = [
        "| indicator | meaning | RGB LED | single LED | PWM LED |",
        "| --- | --- | --- | --- | --- |",
    ]
    columns: tuple[PanelKind, ...] = ("rgb", "single", "pwm")
    for name, pattern in PATTERNS.items():
        looks = " | ".join(describe(pattern.look(kind)) for kind in columns)
        lines.append(f"| `{name}` | {pattern.meaning} | {looks} |")
    lines += ["", "| buzzer cue | beeps |", "| --- | --- |"]
    for cue, beeps in SOUNDS.items():
        gap = f", {beeps.off_s:g} s apart" if beeps.count > 1 else ""
        lines.append(f"| `{cue}` | {beeps.count} x {beeps.on_s:g} s{gap} |")
    return "\n".join(lines)
