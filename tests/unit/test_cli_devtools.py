"""The CLI finds the developer tools' commands only in a development checkout: never on a
device, and not when another project's `devtools` package is what is installed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from edge_recorder.cli import build_parser, devtools_commands


def test_a_checkout_has_the_emulator_and_demo_commands() -> None:
    assert devtools_commands() is not None
    help_text = build_parser().format_help()
    assert "emulator" in help_text and "demo" in help_text


def test_another_projects_devtools_package_is_not_mistaken_for_ours(tmp_path: Path) -> None:
    other = tmp_path / "devtools"
    other.mkdir()
    (other / "__init__.py").write_text("DEBUG = True  # e.g. python-devtools from PyPI\n")
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]);"
        "from edge_recorder.cli import build_parser, devtools_commands;"
        "assert devtools_commands() is None; h = build_parser().format_help();"
        "print('emulator' in h, 'record' in h)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, check=True
    )
    assert done.stdout.split() == ["False", "True"]
