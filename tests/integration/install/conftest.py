"""The device .deb, built once for every packaging test (zstd: the same contents as the
released xz one, compressed in seconds), and the releases the upgrade tests move between: the
built one is 0.1.0; 0.1.0~rc1 and 0.1.2 are the same contents repacked under another version,
and 0.1.1 is a release whose `edge-recorder check` rejects every config (a regression, made by
editing check.py in the repacked tree)."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
REGRESSION = "REJECTS-EVERY-CONFIG"


@pytest.fixture(scope="package")
def deb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("deb")
    done = subprocess.run(
        [sys.executable, "-m", "devtools.deb.build", "--out", str(out), "--compression", "zstd"],
        capture_output=True, text=True, cwd=REPO, timeout=600, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    (package,) = out.glob("edge-recorder_*.deb")
    return package


def sh(*args: str | Path, check: bool = True, **kw: object) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([str(a) for a in args], capture_output=True, text=True, **kw)  # type: ignore[call-overload]
    if check:
        assert done.returncode == 0, (args, done.stdout, done.stderr)
    return done  # type: ignore[no-any-return]


def repack(deb: Path, out: Path, version: str, edit: Callable[[Path], None] | None = None) -> Path:
    """deb under another Version (contents optionally edited)."""
    tree = out / f"tree-{version}"
    sh("dpkg-deb", "-R", deb, tree)
    control = tree / "DEBIAN/control"
    control.write_text(re.sub(r"^Version: .*$", f"Version: {version}", control.read_text(),
                              flags=re.MULTILINE))  # fmt: skip
    if edit:
        edit(tree)
    target = out / f"edge-recorder_{version}.deb"
    sh("dpkg-deb", "--root-owner-group", "-Zzstd", "-z1", "--build", tree, target)
    sh("rm", "-rf", tree)
    return target


def break_check(tree: Path) -> None:
    (check,) = tree.glob("opt/edge-recorder/release/lib/python3*/site-packages/"
                         "edge_recorder/commands/check.py")  # fmt: skip
    text = check.read_text()
    head = "def run(args: argparse.Namespace) -> int:\n"
    assert head in text
    check.write_text(text.replace(
        head, f'{head}    print("FAIL  config  {REGRESSION} (a broken release)")\n    return 78\n'
    ))  # fmt: skip


@pytest.fixture(scope="package")
def releases(deb: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("releases")
    return {
        "0.1.0~rc1": repack(deb, out, "0.1.0~rc1"),
        "0.1.0": deb,
        "0.1.1": repack(deb, out, "0.1.1", break_check),
        "0.1.2": repack(deb, out, "0.1.2"),
    }
