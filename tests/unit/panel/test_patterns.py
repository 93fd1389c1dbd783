"""The documented state → LED/buzzer table keeps its promises, whatever someone edits in it."""

from __future__ import annotations

from typing import get_args

from edge_recorder.config.model import Config
from edge_recorder.encounter.controller import Limits
from edge_recorder.encounter.events import IndicatorName, SoundName
from edge_recorder.panel.patterns import OFF, PATTERNS, SOUNDS, markdown_table


def test_every_indicator_and_cue_has_an_entry() -> None:
    assert set(PATTERNS) == set(get_args(IndicatorName))
    assert set(SOUNDS) == set(get_args(SoundName))


def test_the_recording_light_never_goes_off_while_capturing() -> None:
    capturing = {name for name, p in PATTERNS.items() if p.capturing}
    assert capturing == {n for n in PATTERNS if n.startswith("recording")}
    for name in capturing:
        rgb, mono = PATTERNS[name].rgb, PATTERNS[name].mono
        assert rgb.on[0] == 1.0, name
        assert rgb.solid or rgb.off[0] == 1.0, name  # red lit in both phases of any overlay
        assert mono.solid and mono.level == 1.0, name


def test_nothing_else_looks_like_recording() -> None:
    for name, pattern in PATTERNS.items():
        if pattern.capturing:
            continue
        assert not (pattern.mono.solid and pattern.mono.level > 0), name
        assert not (pattern.rgb.solid and pattern.rgb.on[0] > 0), name


def test_patterns_are_distinguishable_and_well_formed() -> None:
    lights = [p.rgb for p in PATTERNS.values()]
    assert len(set(lights)) == len(lights)
    # a one-colour LED can only be off, on (= recording) or blink: every blink is its own
    monos = [p.mono for p in PATTERNS.values() if not p.mono.solid]
    assert len(set(monos)) == len(monos)
    for name, pattern in PATTERNS.items():
        for light in (pattern.rgb, pattern.mono):
            if not light.solid:
                assert light.on_s > 0 and light.off_s > 0, name
        assert all(0 <= c <= 1 for c in pattern.rgb.on + pattern.rgb.off), name
    assert PATTERNS["idle"].rgb.on != OFF  # alive, not dark: a dead LED is not "ready"
    for beeps in SOUNDS.values():
        assert beeps.count >= 1 and beeps.on_s > 0 and beeps.off_s >= 0


def test_markdown_table_lists_everything() -> None:
    table = markdown_table()
    for name in [*PATTERNS, *SOUNDS]:
        assert f"| `{name}` |" in table
    assert "| `recording` | recording | solid red | on |" in table


def test_limits_fall_back_to_the_config() -> None:
    config = Config.model_validate(
        {
            "aas": {"max_duration_s": 3600, "warn_before_s": 120},
            "vad": {"auto_stop_after_s": 900, "auto_stop_warning_s": 30},
        }
    )
    assert Limits.from_config(config) == Limits(3600, 120, 900, 30)
