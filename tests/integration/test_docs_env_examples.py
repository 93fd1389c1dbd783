"""Every `EDGE_RECORDER__SECTION__KEY=value` example in the README and docs/ is a valid
override on its own (an example that fails validation teaches the wrong thing)."""

from __future__ import annotations

import re
import shlex

import pytest

from edge_recorder.config.loader import build_config
from tests.conftest import ROOT

EXAMPLE = re.compile(r"(EDGE_RECORDER__[A-Z0-9_]+__[A-Z0-9_]+)=('[^']*'|\"[^\"]*\"|[^\s`]+)")
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def examples() -> list[tuple[str, str, str]]:
    found = []
    for page in PAGES:
        for name, raw in EXAMPLE.findall(page.read_text()):
            if name != "EDGE_RECORDER__SECTION__KEY":  # the placeholder of the rule itself
                found.append((page.name, name, shlex.split(raw)[0]))
    return found


def test_the_docs_have_override_examples() -> None:
    assert any(name == "EDGE_RECORDER__PANEL__LED_PINS" for _, name, _ in examples())


@pytest.mark.parametrize(("page", "name", "value"), examples())
def test_each_documented_override_validates(page: str, name: str, value: str) -> None:
    build_config({}, {name: value})  # raises ConfigError, naming the key, when it is invalid
