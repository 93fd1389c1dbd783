"""The device wheel holds the device and nothing else: no emulator, demo, fault proxy or lock
tooling (those live in devtools/, which only a development checkout has), but every data file
the device reads at run time."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def wheel_names(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
         "-w", str(out), str(ROOT)],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    (wheel,) = out.glob("edge_recorder-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        return archive.namelist()


def test_the_wheel_holds_no_developer_tools(wheel_names: list[str]) -> None:
    tops = {name.split("/")[0] for name in wheel_names}
    assert tops == {"edge_recorder", "edge_recorder-0.1.0.dist-info"}
    for banned in ("emulator", "demo", "faultproxy", "config_doc", "lockfile"):
        assert not [n for n in wheel_names if banned in n], banned


def test_the_wheel_holds_what_the_device_reads(wheel_names: list[str]) -> None:
    names = set(wheel_names)
    for needed in (
        "edge_recorder/py.typed",
        "edge_recorder/config/profiles/respeaker-4mic-array.toml",
        "edge_recorder/audio/models/silero_vad_16k.npz",
        "edge_recorder/_proto/ambient/audio/v1/audio_streaming_pb2.py",
        "edge_recorder/uplinks/registry.py",
    ):
        assert needed in names, needed
    assert [n for n in names if n.startswith("edge_recorder/fleet/schemas/")]
