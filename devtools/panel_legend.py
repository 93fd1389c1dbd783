"""Draw the printable panel legend (hardware/panel-legend.svg) from the pattern table.

One row per indicator: what it means to the clinician, in words, and how it looks on each
panel type (RGB LED, single LED, PWM LED) as a strip of one `WINDOW_S` stretch of time, with
the look in words under it. Generated, never hand-edited, so the card on the wall cannot drift
from what `edge_recorder.panel.patterns` drives: tests/unit/devtools/test_panel_legend.py fails
when the committed SVG is stale. `python -m devtools.panel_legend --write` rewrites it.
"""

from __future__ import annotations

import argparse
import sys
from html import escape
from pathlib import Path

from edge_recorder.panel.patterns import (
    PATTERNS,
    Color,
    Light,
    Mono,
    PanelKind,
    describe,
)

LEGEND_PATH = "hardware/panel-legend.svg"
WINDOW_S = 4.0  # every strip shows this much time: long enough for the slowest cycle
PX_PER_S = 45
STRIP_W = int(WINDOW_S * PX_PER_S)
STRIP_H = 18
ROW_H = 58
NAME_W = 330
COLUMN_W = STRIP_W + 30
TOP = 70
LIT_COLOUR = "#ffd23f"  # how a lit one-colour LED is drawn (the part's own colour varies)
COLUMNS: tuple[tuple[PanelKind, str], ...] = (
    ("rgb", "RGB LED"),
    ("single", "single LED"),
    ("pwm", "PWM LED"),
)


def _hex(colour: Color) -> str:
    return "#" + "".join(f"{round(c * 255):02x}" for c in colour)


def _fill(value: float | Color) -> tuple[str, float]:
    """The SVG fill and opacity of one step; dark is drawn as the strip's grey."""
    if isinstance(value, tuple):
        return ("#222222", 1.0) if max(value) == 0 else (_hex(value), 1.0)
    if value <= 0:
        return "#222222", 1.0
    return LIT_COLOUR, max(0.15, min(1.0, value))


def _strip(look: Light | Mono, x: float, y: float) -> list[str]:
    """Rectangles for the look's steps, repeated over `WINDOW_S`."""
    parts = [f'<rect x="{x:g}" y="{y:g}" width="{STRIP_W}" height="{STRIP_H}" fill="#222222"/>']
    steps = look.steps()
    if len(steps) == 1:
        steps = [(steps[0][0], WINDOW_S)]
    t = 0.0
    while t < WINDOW_S - 1e-9:
        for value, seconds in steps:
            width = min(seconds, WINDOW_S - t) * PX_PER_S
            fill, opacity = _fill(value)
            if fill != "#222222" and width > 0:
                parts.append(
                    f'<rect x="{x + t * PX_PER_S:.2f}" y="{y:g}" width="{width:.2f}" '
                    f'height="{STRIP_H}" fill="{fill}" fill-opacity="{opacity:.2f}"/>'
                )
            t += seconds
            if t >= WINDOW_S - 1e-9:
                break
    return parts


def legend_svg() -> str:
    """The whole legend as SVG text (deterministic: same table, same bytes)."""
    width = NAME_W + COLUMN_W * len(COLUMNS) + 10
    height = TOP + ROW_H * len(PATTERNS) + 40
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="sans-serif">',
        f'<rect width="{width}" height="{height}" fill="#ffffff"/>',
        '<text x="10" y="28" font-size="20" font-weight="bold">'
        "edge-recorder panel: what the light means</text>",
        f'<text x="10" y="{TOP - 12}" font-size="12" fill="#555555">'
        f"Each strip shows {WINDOW_S:g} s; dark grey = off. Generated from "
        "edge_recorder/panel/patterns.py by devtools/panel_legend.py.</text>",
    ]
    for i, (_, title) in enumerate(COLUMNS):
        x = NAME_W + i * COLUMN_W
        out.append(f'<text x="{x}" y="{TOP - 30}" font-size="14" font-weight="bold">{title}</text>')
    for row, (name, pattern) in enumerate(PATTERNS.items()):
        y = TOP + row * ROW_H
        if row % 2:
            out.append(f'<rect x="0" y="{y - 4}" width="{width}" height="{ROW_H}" fill="#f3f3f3"/>')
        out.append(f'<text x="10" y="{y + 14}" font-size="14" font-weight="bold">{name}</text>')
        out.append(
            f'<text x="10" y="{y + 32}" font-size="11">{escape(_wrap(pattern.meaning)[0])}</text>'
        )
        for k, line in enumerate(_wrap(pattern.meaning)[1:], start=1):
            out.append(f'<text x="10" y="{y + 32 + 13 * k}" font-size="11">{escape(line)}</text>')
        for i, (kind, _) in enumerate(COLUMNS):
            x = NAME_W + i * COLUMN_W
            look = pattern.look(kind)
            out += _strip(look, x, y)
            words = escape(describe(look))
            out.append(f'<text x="{x}" y="{y + STRIP_H + 14}" font-size="11">{words}</text>')
    foot = TOP + ROW_H * len(PATTERNS) + 16
    out.append(
        f'<text x="10" y="{foot}" font-size="12">While recording, a single or PWM LED stays on '
        "(the patient's guarantee): a warning or an alarm then sounds on the buzzer.</text>"
    )
    out.append("</svg>")
    return "\n".join(out) + "\n"


def _wrap(text: str, width: int = 52) -> list[str]:
    lines: list[str] = []
    for word in text.split():
        if lines and len(lines[-1]) + 1 + len(word) <= width:
            lines[-1] += " " + word
        else:
            lines.append(word)
    return lines or [""]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--write", action="store_true", help=f"rewrite {LEGEND_PATH}")
    parser.add_argument("--root", type=Path, default=Path.cwd())
    args = parser.parse_args(argv)
    if args.write:
        (args.root / LEGEND_PATH).write_text(legend_svg(), encoding="utf-8")
        return 0
    sys.stdout.write(legend_svg())
    return 0


if __name__ == "__main__":
    sys.exit(main())
