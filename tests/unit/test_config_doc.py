"""Generated docs: the example file and README reference stay equal to what the model says."""

from __future__ import annotations

import tomllib
from pathlib import Path

from devtools.config_doc import (
    README_BEGIN,
    README_END,
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


def test_readme_reference_is_current(repo_root: Path) -> None:
    readme = (repo_root / "README.md").read_text()
    start, end = readme.index(README_BEGIN), readme.index(README_END) + len(README_END)
    assert readme[start:end] == reference_markdown(), "README config reference is stale: make docs"


def test_readme_lists_every_key(repo_root: Path) -> None:
    readme = (repo_root / "README.md").read_text()
    missing = [path for path, _ in iter_keys() if f"`{path}`" not in readme]
    assert missing == []
