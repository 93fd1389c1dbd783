"""The printable panel legend (hardware/panel-legend.svg) is generated from the pattern table and
the committed file is current."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from devtools.panel_legend import LEGEND_PATH, legend_svg, main
from edge_recorder.panel.patterns import PANEL_KINDS, PATTERNS, describe

SVG = "{http://www.w3.org/2000/svg}"


def test_committed_legend_is_current(repo_root: Path) -> None:
    assert (repo_root / LEGEND_PATH).read_text(encoding="utf-8") == legend_svg(), (
        f"{LEGEND_PATH} is stale: run `python -m devtools.panel_legend --write`"
    )


def test_legend_names_every_state_with_its_meaning_and_look_per_panel() -> None:
    root = ET.fromstring(legend_svg())
    text = " ".join(t.text or "" for t in root.iter(f"{SVG}text"))
    flat = " ".join(text.split())
    for name, pattern in PATTERNS.items():
        assert name in flat
        assert pattern.meaning in flat, name
        for kind in PANEL_KINDS:
            assert describe(pattern.look(kind)) in flat, (name, kind)


def test_legend_strips_draw_the_rhythm() -> None:
    """offline_buffering on the RGB LED: two blue flashes per 2 s, i.e. four in the 4 s strip."""
    root = ET.fromstring(legend_svg())
    blue = [r for r in root.iter(f"{SVG}rect") if r.get("fill") == "#0000ff"]
    offline_row = [r for r in blue if float(r.get("height", 0)) == 18]
    widths = sorted({round(float(r.get("width", 0)), 2) for r in offline_row})
    assert 6.75 in widths  # a 0.15 s flash at 45 px/s
    flashes = [r for r in offline_row if round(float(r.get("width", 0)), 2) == 6.75]
    assert len(flashes) == 4


def test_write_puts_the_legend_under_hardware(tmp_path: Path) -> None:
    (tmp_path / "hardware").mkdir()
    assert main(["--write", "--root", str(tmp_path)]) == 0
    assert (tmp_path / LEGEND_PATH).read_text(encoding="utf-8") == legend_svg()
