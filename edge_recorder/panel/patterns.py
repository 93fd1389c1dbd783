"""What the LEDs and the buzzer show for each controller indicator: the documented table.

Pure data (no gpiozero), rendered into docs/operations.md by `markdown_table()` and checked by
tests.
The rule the table is built around: **while audio is captured the recording light is on, and
it never blinks off** — a patient must always be able to see that the room is recorded. Any
overlay while recording (warning, alarm, identify) only adds colour on an RGB LED (the red
channel stays lit) and leaves a single/PWM LED solid; the buzzer carries the news instead.
Conversely, a single/PWM LED is never solid-on unless audio is captured.
"""

from __future__ import annotations

from dataclasses import dataclass

from edge_recorder.encounter.events import IndicatorName, SoundName

Color = tuple[float, float, float]
OFF: Color = (0.0, 0.0, 0.0)
RED: Color = (1.0, 0.0, 0.0)
AMBER: Color = (1.0, 0.35, 0.0)
MAGENTA: Color = (1.0, 0.0, 0.8)
WHITE: Color = (1.0, 1.0, 1.0)
BLUE: Color = (0.0, 0.0, 1.0)
DIM_GREEN: Color = (0.0, 0.1, 0.0)


@dataclass(frozen=True)
class Light:
    """`on` for `on_s` seconds, then `off` for `off_s`, repeated; `off_s == 0` means solid."""

    on: Color
    off: Color = OFF
    on_s: float = 0.0
    off_s: float = 0.0

    @property
    def solid(self) -> bool:
        return self.off_s == 0 or self.on == self.off


@dataclass(frozen=True)
class Mono:
    """A single-colour LED: solid at `level` (0 = off), or blinking on/off."""

    level: float = 0.0
    on_s: float = 0.0
    off_s: float = 0.0

    @property
    def solid(self) -> bool:
        return self.off_s == 0


@dataclass(frozen=True)
class Pattern:
    meaning: str
    rgb: Light
    mono: Mono
    capturing: bool = False  # audio is being recorded while this shows


@dataclass(frozen=True)
class Beeps:
    """`count` beeps of `on_s` separated by `off_s`, played once."""

    on_s: float
    off_s: float
    count: int


PATTERNS: dict[IndicatorName, Pattern] = {
    "idle": Pattern("ready; nothing waiting", Light(DIM_GREEN), Mono(0.0)),
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
        "encounter paused: not recording", Light(AMBER, OFF, 1.0, 1.0), Mono(1.0, 0.5, 1.5)
    ),
    "stopping": Pattern("closing the encounter", Light(BLUE), Mono(0.0)),
    "delivering": Pattern(
        "idle; sending recorded audio", Light(BLUE, OFF, 0.5, 0.5), Mono(1.0, 0.1, 0.9)
    ),
    "offline_buffering": Pattern(
        "idle; audio kept safely until the network is back",
        Light(BLUE, OFF, 0.1, 1.9),
        Mono(1.0, 0.1, 1.9),
    ),
    "warning": Pattern(
        "paused encounter will close soon (no activity)",
        Light(AMBER, OFF, 0.25, 0.25),
        Mono(1.0, 0.25, 0.25),
    ),
    "error": Pattern(
        "cannot record: no mic, spool full or service refusing (see ctl status)",
        Light(MAGENTA, OFF, 0.25, 0.25),
        Mono(1.0, 0.1, 0.1),
    ),
    "identify": Pattern("identify this device", Light(WHITE, OFF, 0.1, 0.1), Mono(1.0, 0.5, 0.5)),
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


def _describe_light(light: Light) -> str:
    if light.solid:
        return "off" if light.on == OFF else f"solid {_color_name(light.on)}"
    other = "off" if light.off == OFF else _color_name(light.off)
    return f"{_color_name(light.on)} {light.on_s:g} s / {other} {light.off_s:g} s"


def _describe_mono(mono: Mono) -> str:
    if mono.solid:
        return "off" if mono.level == 0 else ("on" if mono.level >= 1 else f"on at {mono.level:g}")
    return f"blink {mono.on_s:g} s on / {mono.off_s:g} s off"


def _color_name(color: Color) -> str:
    names = {
        RED: "red",
        AMBER: "amber",
        MAGENTA: "magenta",
        WHITE: "white",
        BLUE: "blue",
        DIM_GREEN: "dim green",
    }
    return names.get(color, str(color))


def markdown_table() -> str:
    """The state → pattern table as Markdown, for docs/operations.md."""
    lines = [
        "| indicator | meaning | RGB LED | single / PWM LED |",
        "| --- | --- | --- | --- |",
    ]
    for name, pattern in PATTERNS.items():
        lines.append(
            f"| `{name}` | {pattern.meaning} | {_describe_light(pattern.rgb)} | "
            f"{_describe_mono(pattern.mono)} |"
        )
    lines += ["", "| buzzer cue | beeps |", "| --- | --- |"]
    for cue, beeps in SOUNDS.items():
        gap = f", {beeps.off_s:g} s apart" if beeps.count > 1 else ""
        lines.append(f"| `{cue}` | {beeps.count} x {beeps.on_s:g} s{gap} |")
    return "\n".join(lines)
