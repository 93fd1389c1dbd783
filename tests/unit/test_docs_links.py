"""The Markdown docs point at things that exist: relative links, #anchors, repository paths."""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import unquote

import pytest

ROOT = Path(__file__).resolve().parents[2]
PATH_PREFIXES = (
    "edge_recorder/",
    "devtools/",
    "tests/",
    "benchmarks/",
    "systemd/",
    "hardware/",
    "protos/",
    "docs/",
)
FENCE = re.compile(r"^\s*(```|~~~)")
HEADING = re.compile(r"^ {0,3}#{1,6}[ \t]+(.+?)(?:[ \t]+#+)?[ \t]*$")
CODE_SPAN = re.compile(r"(`+)(.+?)\1")
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
SKIPPED_SCHEMES = ("http:", "https:", "mailto:")


def pages() -> list[Path]:
    found = [ROOT / "README.md", ROOT / "systemd" / "README.md", ROOT / "protos" / "README.md"]
    found += sorted((ROOT / "docs").glob("*.md")) + sorted((ROOT / "hardware").rglob("*.md"))
    return found


def prose(page: Path) -> Iterator[str]:
    """The page's lines outside fenced code blocks."""
    fenced = False
    for line in page.read_text(encoding="utf-8").splitlines():
        if FENCE.match(line):
            fenced = not fenced
        elif not fenced:
            yield line


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link in a heading: its text
    return re.sub(r"[^\w\- ]", "", text.lower()).replace(" ", "-")


@functools.cache
def anchors(page: Path) -> frozenset[str]:
    """The anchors of the page's headings; a repeated heading gets -1, -2, ..."""
    found: set[str] = set()
    counts: dict[str, int] = {}
    for line in prose(page):
        if match := HEADING.match(line):
            base = slug(match.group(1))
            count = counts.get(base, 0)
            counts[base] = count + 1
            found.add(f"{base}-{count}" if count else base)
    return frozenset(found)


def link_problems(page: Path) -> Iterator[str]:
    for line in prose(page):
        for target in LINK.findall(CODE_SPAN.sub("code", line)):
            if target.startswith(SKIPPED_SCHEMES):
                continue
            path, _, anchor = target.partition("#")
            dest = (page.parent / unquote(path)).resolve() if path else page
            if not dest.exists():
                yield f"{target}: no such file"
            elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
                yield f"{target}: no heading with that anchor"


def code_path_problems(page: Path) -> Iterator[str]:
    for line in prose(page):
        for _, span in CODE_SPAN.findall(line):
            words = span.split()
            path = words[0].split("::")[0].split("#")[0] if words else ""
            checked = path.startswith(PATH_PREFIXES) and not any(c in path for c in "*<{")
            if checked and not (ROOT / path).exists():
                yield f"`{span}`: {path} does not exist"


PAGES = pytest.mark.parametrize("page", pages(), ids=lambda page: str(page.relative_to(ROOT)))


@PAGES
def test_relative_links_resolve(page: Path) -> None:
    problems = list(link_problems(page))
    assert not problems, "\n".join(problems)


@PAGES
def test_repository_paths_in_code_exist(page: Path) -> None:
    problems = list(code_path_problems(page))
    assert not problems, "\n".join(problems)


def test_slugs_follow_github() -> None:
    assert slug("Using the device: encounters, buttons, lights, `ctl`") == (
        "using-the-device-encounters-buttons-lights-ctl"
    )
    assert slug("State → LED and buzzer") == "state--led-and-buzzer"
    assert slug("Silero VAD without onnxruntime (`vad.silero_backend`)") == (
        "silero-vad-without-onnxruntime-vadsilero_backend"
    )


def test_duplicate_headings_get_numbered(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text("# A\n## Setup\n```\n# not a heading\n```\n## Setup\n## Setup\n")
    assert anchors(page) == {"a", "setup", "setup-1", "setup-2"}
