"""The committed uPlot files are byte for byte the npm-locked package's (devtools/assets).

node_modules comes from `make node` (part of `make test`), so a missing install is a failure
that names the fix, never a skip: a skipped check would let a hand-edited vendor file ship.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from devtools.assets import vendor

ROOT = Path(__file__).resolve().parents[3]


def _installed_or_fail() -> None:
    if not (vendor.NODE_MODULES / "uplot" / "package.json").is_file():
        pytest.fail(
            f"{vendor.NODE_MODULES} is not installed: run `make node` "
            "(npm ci in devtools/assets) before the tests"
        )


def test_vendor_files_equal_the_locked_package() -> None:
    _installed_or_fail()
    assert vendor.differences() == [], "static/vendor is stale: run `make assets`"
    for _src, dst in vendor.FILES:
        assert (vendor.VENDOR_DIR / dst).stat().st_size > 0


def test_installed_package_is_the_locked_version() -> None:
    _installed_or_fail()
    lock = json.loads((ROOT / "devtools/assets/package-lock.json").read_text())
    manifest = json.loads((ROOT / "devtools/assets/package.json").read_text())
    installed = json.loads((vendor.NODE_MODULES / "uplot/package.json").read_text())
    pinned = manifest["dependencies"]["uplot"]
    assert pinned[0].isdigit(), "uplot must be pinned to an exact version"
    assert lock["packages"]["node_modules/uplot"]["version"] == pinned == installed["version"]
    assert lock["packages"]["node_modules/uplot"]["integrity"].startswith("sha512-")


def test_check_mode_reports_a_difference(tmp_path: Path) -> None:
    _installed_or_fail()
    target = tmp_path / "vendor"
    assert vendor.copy(vendor.NODE_MODULES, target) == [name for _s, name in vendor.FILES]
    assert vendor.differences(vendor.NODE_MODULES, target) == []
    (target / "uPlot.min.css").write_text("/* edited by hand */")
    assert vendor.differences(vendor.NODE_MODULES, target) == ["uPlot.min.css"]
    assert vendor.copy(vendor.NODE_MODULES, target) == ["uPlot.min.css"]
    assert vendor.differences(vendor.NODE_MODULES, target) == []


def test_missing_install_names_make_node(tmp_path: Path) -> None:
    with pytest.raises(vendor.MissingPackages, match="make node"):
        vendor.differences(tmp_path / "node_modules", tmp_path / "vendor")
