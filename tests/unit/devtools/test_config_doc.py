"""Generated docs: the example file and the reference in docs/configuration.md stay equal to what
the model says."""

from __future__ import annotations

import tomllib
from pathlib import Path

from devtools.config_doc import (
    REFERENCE_BEGIN,
    REFERENCE_END,
    REFERENCE_PAGE,
    example_toml,
    iter_keys,
    reference_markdown,
)


def test_example_file_is_current(repo_root: Path) -> None:
    assert (repo_root / "config.example.toml").read_text() == example_toml(), (
        "config.example.toml is stale: run `make docs`"
    )


def test_example_documents_every_key(repo_root: Path) -> None:
    text = (repo_root / "config.example.toml").read_text()
    parsed = tomllib.loads(text)
    for path, _field in iter_keys():
        section, key = path.split(".", 1)
        assert key in parsed.get(section, {}) or f"# {key} =" in text, path


def test_reference_page_is_current(repo_root: Path) -> None:
    page = (repo_root / REFERENCE_PAGE).read_text()
    start, end = page.index(REFERENCE_BEGIN), page.index(REFERENCE_END) + len(REFERENCE_END)
    assert page[start:end] == reference_markdown(), f"{REFERENCE_PAGE} is stale: run `make docs`"


def test_reference_page_lists_every_key(repo_root: Path) -> None:
    page = (repo_root / REFERENCE_PAGE).read_text()
    missing = [path for path, _ in iter_keys() if f"`{path}`" not in page]
    assert missing == []
