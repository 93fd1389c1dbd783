"""`audio.array_processing = "calibrated"` and its two keys: what the config accepts and refuses."""

from __future__ import annotations

import typing
from pathlib import Path

import pytest
from pydantic import ValidationError

from edge_recorder.audio.array import KINDS
from edge_recorder.config.hardware import PROFILES_ENV
from edge_recorder.config.loader import ConfigError, build_config
from edge_recorder.config.model import AudioConfig

SQUARE_MM = [(22.85, 22.85, 0.0), (-22.85, 22.85, 0.0), (-22.85, -22.85, 0.0), (22.85, -22.85, 0.0)]


@pytest.fixture(autouse=True)
def _no_site_profiles(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr("edge_recorder.config.hardware.SITE_PROFILES", tmp_path / "no-site")
    monkeypatch.delenv(PROFILES_ENV, raising=False)


def test_calibrated_is_accepted_with_a_geometry_and_has_safe_defaults() -> None:
    audio = AudioConfig(channels=4, mic_positions_mm=SQUARE_MM, array_processing="calibrated")
    assert audio.array_calibration == Path("/var/lib/edge-recorder/array-calibration.npz")
    assert audio.array_calibration_fallback == "mvdr-wpe-postfilter"


def test_calibrated_needs_the_geometry_like_every_beam() -> None:
    with pytest.raises(ValidationError, match=r"needs audio\.mic_positions_mm"):
        AudioConfig(channels=4, array_processing="calibrated")


def test_the_fallback_cannot_be_calibrated_and_says_why() -> None:
    with pytest.raises(ValidationError, match="choose a blind kind") as caught:
        AudioConfig(
            channels=4,
            mic_positions_mm=SQUARE_MM,
            array_processing="calibrated",
            array_calibration_fallback="calibrated",
        )
    assert caught.value.errors()[0]["loc"] == ("array_calibration_fallback",)


def test_the_fallback_accepts_every_blind_kind_and_nothing_else() -> None:
    fallbacks = set(
        typing.get_args(AudioConfig.model_fields["array_calibration_fallback"].annotation)
    )
    assert fallbacks == set(KINDS) - {"calibrated"}
    with pytest.raises(ValidationError):
        AudioConfig(array_calibration_fallback="beamy")


def test_a_config_file_sets_them_over_a_profile(tmp_path: Path) -> None:
    """The site's choice wins over the profile's blind kind; the profile keeps its geometry."""
    config = build_config(
        {
            "audio": {
                "profile": "respeaker-4mic-array",
                "array_processing": "calibrated",
                "array_calibration": str(tmp_path / "room.npz"),
                "array_calibration_fallback": "mvdr",
            }
        },
        environ={},
    )
    assert config.audio.array_processing == "calibrated"
    assert config.audio.array_calibration == tmp_path / "room.npz"
    assert config.audio.array_calibration_fallback == "mvdr"
    assert len(config.audio.mic_positions_mm) == 4


def test_a_bad_fallback_in_a_file_is_a_config_error_naming_the_key() -> None:
    with pytest.raises(ConfigError) as caught:
        build_config(
            {
                "audio": {
                    "profile": "respeaker-4mic-array",
                    "array_processing": "calibrated",
                    "array_calibration_fallback": "calibrated",
                }
            },
            environ={},
        )
    assert any("audio.array_calibration_fallback" in line for line in caught.value.lines)
