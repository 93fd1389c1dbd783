"""The plug-in registries are the one list of services and capture sources: the config's
choices, the extras, the emulators and the reload rule all agree with them."""

from __future__ import annotations

import importlib.util
import tomllib
from pathlib import Path
from typing import get_args

from edge_recorder.capture.registry import SOURCES
from edge_recorder.config.model import AudioConfig, UplinkConfig
from edge_recorder.uplinks.registry import DELIVERY_SECTIONS, SERVICES

ROOT = Path(__file__).resolve().parents[2]


def test_uplink_service_choices_are_the_registry() -> None:
    assert set(get_args(UplinkConfig.model_fields["service"].annotation)) == set(SERVICES)


def test_capture_source_choices_are_the_registry() -> None:
    assert set(get_args(AudioConfig.model_fields["source"].annotation)) == set(SOURCES)


def test_each_service_names_a_real_extra_and_emulator() -> None:
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    for name, spec in SERVICES.items():
        assert spec.extra is None or spec.extra in extras, name
        assert importlib.util.find_spec(f"devtools.emulators.{spec.emulator}"), name
        assert "uplink" in spec.config_sections, name


def test_every_service_section_restarts_delivery_on_reload() -> None:
    assert {"uplink", "auth", "aas", "corti", "dice", "aws"} == DELIVERY_SECTIONS


def test_each_services_libraries_load_only_when_that_service_is_built() -> None:
    """The registry must import without the `aws` extra (a device without it still runs AAS),
    and a device loads only its own service's libraries: gRPC, aiohttp and PyJWT are ~25 MB of
    RSS a Corti or AWS device does not need (aiohttp and jwt were loaded by every daemon)."""
    import subprocess
    import sys

    heavy = ("awscrt", "botocore", "onnxruntime", "grpc", "aiohttp", "jwt", "google.protobuf")
    code = (
        "import sys, edge_recorder.uplinks.registry, edge_recorder.app.daemon;"
        f"print(sorted(m for m in {heavy!r} if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
