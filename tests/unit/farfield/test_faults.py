"""The faulty-mic evaluation (devtools/farfield/faults.py): each fault reaches the shipped
beam, which leaves the mic out; the goal reads every row, not the mean."""

from __future__ import annotations

from typing import Any

from devtools.farfield import faults


def test_each_fault_is_scored_on_the_profiles_shipped_beam() -> None:
    rows = faults.run(["respeaker-2mic-hat"], seconds=4.0)
    assert [r["fault in mic 2"] for r in rows] == list(faults.FAULTS)
    left = {r["fault in mic 2"]: r["left out"] for r in rows}
    assert left["dead (zeros)"] == "mic 2 silent"
    assert left["6 dB low"] == "-"  # matched by a gain, kept
    assert left["oscillating preamp (noise at -10 dBFS)"] == "mic 2 loud"  # not mic 1
    assert {r["kind"] for r in rows} == {"mvdr-wpe-postfilter"}


def row(fault: str, beam_db: float, stoi: float = 0.70, level: float = 0.0) -> dict[str, Any]:
    return {
        "profile": "4mic-array", "kind": "mvdr-postfilter", "fault in mic 2": fault,
        "mix SI-SDR": -5.0, "beam SI-SDR": beam_db, "mix STOI": 0.70, "beam STOI": stoi,
        "level vs healthy beam dB": level, "left out": "-",
    }  # fmt: skip


def test_the_goal_is_met_only_if_every_fault_is_no_worse_than_the_mix() -> None:
    good = [row("dead (zeros)", -1.5), row("6 dB low", -2.0, level=-2.9)]
    (goal,) = faults.goals(good)
    assert goal["met"] and "+3.00 dB SI-SDR" in goal["value"]
    assert not faults.goals([*good, row("blocked port (-20 dB)", -5.6)])[0]["met"]
    assert not faults.goals([*good, row("dead (zeros)", -1.0, stoi=0.688)])[0]["met"]
    assert not faults.goals([*good, row("dead (zeros)", -1.0, level=-3.5)])[0]["met"]
