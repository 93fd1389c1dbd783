"""One lock for every install: uv.lock agrees with pyproject.toml, its pip exports agree with
it, and this very venv (what `make test` built) holds exactly the locked set."""

from __future__ import annotations

import copy
import shutil
import subprocess
import sys
import tomllib
from importlib import metadata
from pathlib import Path

from packaging.utils import canonicalize_name

from devtools import lockfile

ROOT = Path(__file__).resolve().parents[3]
UV = str(Path(sys.executable).parent / "uv")


def _pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def _lock() -> dict:
    return tomllib.loads((ROOT / "uv.lock").read_text())


def test_pyproject_ranges_admit_every_locked_version() -> None:
    assert lockfile.disagreements(_pyproject(), _lock()) == []


def test_a_range_the_lock_falls_outside_is_named() -> None:
    pyproject = copy.deepcopy(_pyproject())
    deps = pyproject["project"]["dependencies"]
    deps[:] = [d if not d.startswith("numpy") else "numpy>=99" for d in deps]
    pyproject["project"]["optional-dependencies"]["aws"].append("boto3>=1")
    problems = lockfile.disagreements(pyproject, _lock())
    assert len(problems) == 2, problems
    assert problems[0].startswith("numpy (dependencies: 'numpy>=99') is locked at ")
    assert problems[1].startswith("boto3 (extra aws: 'boto3>=1') is not in uv.lock")


def test_uv_finds_the_lock_current() -> None:
    done = subprocess.run(
        [UV, "lock", "--check", "--offline"], cwd=ROOT, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr


def test_the_exports_are_the_lock() -> None:
    assert lockfile.stale_exports(lockfile.OUT) == []


def test_a_hand_edited_export_is_caught(tmp_path: Path) -> None:
    out = tmp_path / "requirements"
    shutil.copytree(lockfile.OUT, out)
    device = out / "device.txt"
    device.write_text(device.read_text().replace("numpy==", "numpy>=", 1))
    (out / "extra-gone.txt").write_text("")
    assert lockfile.stale_exports(out) == ["device.txt", "extra-gone.txt"]


def test_this_venv_holds_exactly_the_locked_set() -> None:
    expected = lockfile.installed_pins(["build.txt", "dev.txt"])
    installed = {
        canonicalize_name(d.metadata["Name"]): d.version
        for d in metadata.distributions()
        if canonicalize_name(d.metadata["Name"]) != "edge-recorder"
    }
    assert installed == expected


def test_every_export_pins_with_hashes() -> None:
    for path in lockfile.OUT.glob("*.txt"):
        blocks = lockfile.blocks(path.read_text())
        for name, block in blocks.items():
            assert "==" in block.splitlines()[0], (path.name, name)
            assert "--hash=sha256:" in block, (path.name, name)
