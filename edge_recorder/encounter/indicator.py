"""Which LED pattern the device shows for the encounter controller's state.

One pure precedence rule, kept apart from the transitions that change the state, so the
order reads in one place: while recording the light stays on and only overlays change,
identify comes before the rest, and a fault or a config that cannot deliver comes before
the backlog blink (nothing would be delivered).
"""

from __future__ import annotations

from edge_recorder.encounter.events import IndicatorName


def choose_indicator(
    phase: str,
    *,
    identify: bool,
    warned: bool,
    alarmed: bool,
    faulted: bool,
    backlog: int,
    online: bool,
) -> IndicatorName:
    """The pattern for `phase` (the controller's `Phase`) and the overlays that apply."""
    if phase == "recording":  # the light stays on: only overlays change
        if alarmed:
            return "recording_alarm"
        if warned:
            return "recording_warning"
        return "recording_identify" if identify else "recording"
    if identify:
        return "identify"
    if phase == "paused":
        return "warning" if warned else "paused"
    if phase == "stopping":
        return "stopping"
    if phase == "interrupted" or faulted:
        return "error"  # not the backlog blink: nothing will be delivered
    if backlog:
        return "delivering" if online else "offline_buffering"
    return "idle"
