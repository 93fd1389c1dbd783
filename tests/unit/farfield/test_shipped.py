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
    assert result.machine_reference_ms > 0  # the machine's speed travels with the figure


def test_the_opt_in_calibrated_beam_is_measured_with_a_valid_calibration() -> None:
    """The calibration must load: a refused one would time the fallback, not the beam."""
    from edge_recorder.audio.array.calibration_file import check_calibration
    from edge_recorder.audio.array.stage import last_calibration_note

    made = shipped.synthetic_calibration(
        load_profile("respeaker-4mic-array").audio["mic_positions_mm"], 3
    )
    check_calibration(made)  # raises on an invalid one
    assert len(made.spots) == 3
    result = shipped.measure("respeaker-4mic-array", seconds=0.5, repeats=1, calibrated_spots=3)
    assert result.kind == "calibrated" and result.stages["dsp"] > 0
    assert last_calibration_note() is None  # the beam ran, not its fallback
