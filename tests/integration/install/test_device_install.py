"""systemd/install.sh builds the device venv for real (into a temporary root): exactly the
locked versions, hash-checked, no developer tools, no extras unless asked; a configured feature
whose extra is missing fails `check` and start-up with exit 78 naming the extra.

Slow-ish (two venvs, ~30 s with a warm pip cache) but the only proof that a device gets what the
lock says, and that the default install really leaves the extras out."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from packaging.utils import canonicalize_name

from devtools import lockfile

REPO = Path(__file__).resolve().parents[3]
INSTALL = REPO / "systemd" / "install.sh"
EX_CONFIG = 78


def pins(*names: str) -> dict[str, str]:
    return lockfile.installed_pins(names)


def install(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EDGE_RECORDER")}
    done = subprocess.run(
        ["bash", str(INSTALL), "--root", str(root), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done


def venv_python(root: Path) -> Path:
    return root / "opt/edge-recorder/venv/bin/python"


def frozen(root: Path) -> dict[str, str]:
    out = subprocess.run(
        [str(venv_python(root)), "-m", "pip", "list", "--format=freeze"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return {
        canonicalize_name(name): version
        for name, _, version in (line.partition("==") for line in out.splitlines())
    }


def edge_recorder(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EDGE_RECORDER")}
    return subprocess.run(
        [str(root / "opt/edge-recorder/venv/bin/edge-recorder"), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    target = tmp_path_factory.mktemp("device") / "root"
    target.mkdir()
    install(target)
    yield target


@pytest.fixture
def configs(tmp_path: Path) -> dict[str, Path]:
    aws = tmp_path / "aws.toml"
    aws.write_text('[uplink]\nservice = "aws-healthscribe"\n')
    onnx = tmp_path / "onnx.toml"
    onnx.write_text('[vad]\nsilero_backend = "onnxruntime"\n')
    return {"aws": aws, "onnx": onnx}


def test_the_default_install_is_exactly_the_locked_core(root: Path) -> None:
    expected = pins("build.txt", "device.txt", "extra-pi.txt")
    assert frozen(root) == {**expected, "edge-recorder": "0.1.0"}


def test_the_default_install_holds_no_extras_and_no_developer_tools(root: Path) -> None:
    absent = ["onnxruntime", "awscrt", "botocore", "h2", "pytest", "grpc_tools", "tomli_w", "uv"]
    probe = f"import importlib.util as u; print([m for m in {absent!r} if u.find_spec(m)])"
    out = subprocess.run(
        [str(venv_python(root)), "-c", probe], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("extra", ["aws", "onnx"])
def test_a_feature_whose_extra_is_missing_fails_check_and_startup(
    root: Path, configs: dict[str, Path], extra: str
) -> None:
    for command in (["check"], ["run"]):
        done = edge_recorder(root, *command, "--config", str(configs[extra]))
        assert done.returncode == EX_CONFIG, (command, done.stdout, done.stderr)
        assert f"needs the optional extra {extra!r}" in done.stderr
        assert f"pip install 'edge-recorder[{extra}]'" in done.stderr


def test_an_upgrade_with_extras_installs_exactly_them_and_keeps_one_venv_back(
    root: Path, configs: dict[str, Path]
) -> None:
    venvs = root / "opt/edge-recorder/venvs"
    before = os.readlink(root / "opt/edge-recorder/venv")
    install(root, "--extras", "pi,aws,onnx")
    expected = pins("build.txt", "device.txt", "extra-pi.txt", "extra-aws.txt", "extra-onnx.txt")
    assert frozen(root) == {**expected, "edge-recorder": "0.1.0"}
    for extra, config in configs.items():
        done = edge_recorder(root, "check", "--config", str(config))
        assert "optional extra" not in done.stderr, (extra, done.stderr)
        # valid (a config without service endpoints then exits 78: it cannot deliver)
        assert f"{config} is valid" in done.stdout, (extra, done.stdout, done.stderr)
    after = os.readlink(root / "opt/edge-recorder/venv")
    assert after != before and after.startswith("venvs/")
    assert sorted(p.name for p in venvs.iterdir()) == sorted([Path(before).name, Path(after).name])
    # A third install drops the oldest: the running one and its predecessor stay.
    install(root)
    assert Path(after).name in {p.name for p in venvs.iterdir()}
    assert Path(before).name not in {p.name for p in venvs.iterdir()}
    assert "awscrt" not in frozen(root)


def test_an_unknown_extra_changes_nothing(root: Path) -> None:
    link = os.readlink(root / "opt/edge-recorder/venv")
    env = {k: v for k, v in os.environ.items() if not k.startswith("EDGE_RECORDER")}
    done = subprocess.run(
        ["bash", str(INSTALL), "--root", str(root), "--extras", "pi,gpu"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert done.returncode != 0
    assert "unknown extra 'gpu' (known: array-check,aws,dashboard,onnx,pi)" in done.stderr
    assert os.readlink(root / "opt/edge-recorder/venv") == link
