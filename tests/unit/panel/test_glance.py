"""A clinician tells the panel's states apart at a glance, on every panel type.

Computed from the pattern table itself (`patterns.glance`): colours, rhythm (steady, single,
double, triple, breathing) and repetition rate. Two states a clinician must tell apart differ
in at least one of them, a rate only counting when one is at least twice the other.
"""

from __future__ import annotations

import itertools

import pytest

from edge_recorder.panel.patterns import (
    AMBER,
    LIT,
    OFF,
    PANEL_KINDS,
    PATTERNS,
    WARNINGS,
    Glance,
    PanelKind,
    glance,
    must_tell_apart,
    tell_apart,
)


@pytest.mark.parametrize("kind", PANEL_KINDS)
def test_every_state_a_clinician_acts_on_looks_different(kind: PanelKind) -> None:
    alike = [
        (a, b, glance(a, kind))
        for a, b in itertools.combinations(PATTERNS, 2)
        if must_tell_apart(a, b, kind) and not tell_apart(glance(a, kind), glance(b, kind))
    ]
    assert alike == [], f"{kind}: these pairs look the same at a glance"


@pytest.mark.parametrize("kind", PANEL_KINDS)
def test_only_the_recording_overlays_may_share_a_look_and_only_on_one_colour(
    kind: PanelKind,
) -> None:
    exempt = {
        (a, b) for a, b in itertools.combinations(PATTERNS, 2) if not must_tell_apart(a, b, kind)
    }
    if kind == "rgb":
        assert exempt == set()
    else:
        assert all(PATTERNS[a].capturing and PATTERNS[b].capturing for a, b in exempt)
        assert all(glance(name, kind).rhythm == "steady" for pair in exempt for name in pair)


@pytest.mark.parametrize("kind", PANEL_KINDS)
def test_no_state_looks_like_a_dead_device(kind: PanelKind) -> None:
    dark = Glance(frozenset({OFF}), "steady", 0.0)
    assert [name for name in PATTERNS if glance(name, kind) == dark] == []
    assert glance("idle", kind).colours != frozenset({OFF})


@pytest.mark.parametrize("kind", PANEL_KINDS)
def test_error_is_fast_and_differs_from_every_warning_by_rhythm_not_just_colour(
    kind: PanelKind,
) -> None:
    error = glance("error", kind)
    assert error.rhythm == "single" and error.rate_hz >= 3.0  # a fast blink
    for name in WARNINGS:
        colourless = Glance(error.colours, glance(name, kind).rhythm, glance(name, kind).rate_hz)
        if must_tell_apart("error", name, kind):
            assert tell_apart(error, colourless), name


@pytest.mark.parametrize("kind", PANEL_KINDS)
def test_sending_and_offline_differ_in_rhythm_class_not_just_duty(kind: PanelKind) -> None:
    assert glance("delivering", kind).rhythm != glance("offline_buffering", kind).rhythm


def test_rgb_colours_carry_the_meaning() -> None:
    assert PATTERNS["error"].rgb.on == PATTERNS["recording"].rgb.on  # red: error (blinking)
    assert {PATTERNS[n].rgb.on for n in ("paused", "warning", "recording_warning")} == {AMBER}
    assert PATTERNS["delivering"].rgb.on[1] > 0 or PATTERNS["delivering"].rgb.on[2] > 0


def test_the_glance_rules_themselves() -> None:
    lit_blink = frozenset({LIT, OFF})
    one_hz = Glance(lit_blink, "single", 1.0)
    assert not tell_apart(one_hz, Glance(lit_blink, "single", 1.5))  # too close in rate
    assert tell_apart(one_hz, Glance(lit_blink, "single", 2.0))
    assert tell_apart(one_hz, Glance(lit_blink, "double", 1.0))
    assert tell_apart(one_hz, Glance(frozenset({AMBER, OFF}), "single", 1.0))
    assert not tell_apart(
        Glance(frozenset({OFF}), "steady", 0.0), Glance(frozenset({OFF}), "steady", 0.0)
    )
