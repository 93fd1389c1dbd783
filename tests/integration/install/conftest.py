"""The device .deb, built once for every packaging test (zstd: the same contents as the
released xz one, compressed in seconds)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]


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
