"""The shipped-profile CPU measure runs each beam profile's real Pipeline as configured."""

from __future__ import annotations

from devtools.farfield import shipped
from edge_recorder.config.hardware import load_profile


def test_every_profile_that_ships_a_beam_is_measured_with_its_own_settings() -> None:
    names = shipped.array_profiles()
    assert {"respeaker-4mic-array", "respeaker-6mic-array"} <= set(names)
    assert "respeaker-usb-v2" not in names  # beamforms on board: ships the plain mix
    result = shipped.measure("respeaker-6mic-array", seconds=0.5, repeats=2)
    profile = load_profile("respeaker-6mic-array").audio
    assert (result.kind, result.batch_hops, result.period_ms) == (
        profile["array_processing"],
        profile["array_batch_hops"],
        profile["period_ms"],
    )
    assert result.cpu_per_s > 0 and set(result.stages) == {"dsp", "vad", "encode"}
    assert result.stages["dsp"] > 0 and result.stages["vad"] > 0  # the beam and Silero ran
