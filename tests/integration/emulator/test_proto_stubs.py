"""The committed stubs are exactly what protos/generate.py makes, and they load at runtime."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from google.protobuf import __version__ as protobuf_version

ROOT = Path(__file__).resolve().parents[3]
COMMITTED = ROOT / "edge_recorder" / "_proto"


def _tree(base: Path) -> dict[str, str]:
    return {
        str(p.relative_to(base)): p.read_text()
        for p in sorted(base.rglob("*"))
        if p.suffix in {".py", ".pyi"} and "__pycache__" not in p.parts
    }


def test_committed_stubs_match_the_proto(tmp_path: Path) -> None:
    out = tmp_path / "gen"
    subprocess.run(
        [sys.executable, str(ROOT / "protos" / "generate.py"), "--out", str(out)],
        check=True,
        capture_output=True,
    )
    fresh, committed = _tree(out), _tree(COMMITTED)
    assert sorted(fresh) == sorted(committed), "run `make proto`: stub files differ"
    drifted = [name for name in fresh if fresh[name] != committed[name]]
    assert not drifted, f"run `make proto`: {drifted} drifted from protos/"


def test_stub_imports_are_package_relative() -> None:
    for name, text in _tree(COMMITTED).items():
        assert not re.search(r"^from ambient\.", text, re.MULTILINE), name


def test_pyproject_protobuf_floor_satisfies_the_gencode() -> None:
    """protobuf refuses gencode newer than the runtime: the declared floor must cover it."""
    gencode = (COMMITTED / "ambient/audio/v1/audio_streaming_pb2.py").read_text()
    found = re.search(r"Python Version: (\d+)\.(\d+)\.(\d+)", gencode)
    assert found, "gencode has no version line"
    major, minor, patch = map(int, found.groups())
    pyproject = (ROOT / "pyproject.toml").read_text()
    floor = re.search(r'"protobuf>=(\d+)\.(\d+)(?:\.(\d+))?,<(\d+)"', pyproject)
    assert floor, "protobuf dependency not found in pyproject.toml"
    f_major, f_minor, f_patch, ceiling = (int(x or 0) for x in floor.groups())
    assert (f_major, f_minor, f_patch) >= (major, minor, patch)
    assert f_major == major and ceiling == major + 1  # same major as the gencode
    assert tuple(map(int, protobuf_version.split(".")[:3])) >= (major, minor, patch)


def test_grpc_floor_satisfies_the_generated_check() -> None:
    grpc_gen = (COMMITTED / "ambient/audio/v1/audio_streaming_pb2_grpc.py").read_text()
    generated = re.search(r"GRPC_GENERATED_VERSION = '([\d.]+)'", grpc_gen).group(1)
    floor = re.search(r'"grpcio>=([\d.]+),', (ROOT / "pyproject.toml").read_text()).group(1)
    as_tuple = lambda v: tuple(int(x) for x in v.split("."))  # noqa: E731
    assert as_tuple(floor) >= as_tuple(generated)


def test_datachunk_json_names_match_the_websocket_frame() -> None:
    from google.protobuf import json_format

    from edge_recorder._proto.ambient.audio.v1 import audio_streaming_pb2 as pb

    chunk = json_format.Parse('{"DataStart": 6, "Data": "AAE="}', pb.DataChunkRequest())
    assert (chunk.data_start, chunk.data) == (6, b"\x00\x01")
    assert set(json_format.MessageToDict(chunk)) == {"DataStart", "Data"}
