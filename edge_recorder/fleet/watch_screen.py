"""Laying the fleet out on a terminal of a given size (pure).

With 50 devices the old table scrolled its header away and wrapped every row on a narrow
terminal. A frame now has a header that stays on top (title and clock, counts, a broker banner
while disconnected), as many rows as fit, and a footer saying which rows are shown; paging moves
through the rest. No line is longer than the width: columns drop least important first, then
cells end in an ellipsis. Text from payloads is made printable ASCII first, so a hostile status
cannot send escape sequences to the operator's terminal nor misalign the table with wide
characters.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from edge_recorder.fleet.watch import FIRST_HEALTHY_RANK, FleetView, age, ordered, record, size

COLUMNS = ("DEVICE", "PRESENCE", "STATE", "SEEN", "BACKLOG", "MIC", "VERSION", "ALERTS")
DROP_ORDER = ("VERSION", "MIC", "BACKLOG", "SEEN", "STATE")  # least important first
CAPS = {"DEVICE": 24, "PRESENCE": 20, "STATE": 9, "SEEN": 4, "BACKLOG": 20, "MIC": 9}
CAPS["VERSION"] = 16
MIN_DEVICE, MIN_ALERTS = 8, 10
GAP = "  "
ELLIPSIS = "…"
RED, YELLOW, GREEN, DIM, RESET = "\x1b[31m", "\x1b[33m", "\x1b[32m", "\x1b[2m", "\x1b[0m"


@dataclass(frozen=True)
class Screen:
    """What to draw into: None width/height = unlimited (every row, nothing cut)."""

    width: int | None = None
    height: int | None = None
    page: int = 1  # 1-based; clamped to the pages there are
    source: str | None = None  # "prefix @ host:port" for the title
    broker_lost_since: float | None = None  # epoch seconds; None while connected
    hint: str | None = None  # key help for the footer


@dataclass(frozen=True)
class Frame:
    lines: list[str]
    page: int
    pages: int
    rows_per_page: int


def clean(text: str) -> str:
    """Printable ASCII only (anything else becomes '?')."""
    return "".join(c if " " <= c <= "~" else "?" for c in text)


def fit(text: str, width: int | None) -> str:
    """Cut to width, the last visible character an ellipsis."""
    if width is None or len(text) <= width:
        return text
    return "" if width <= 0 else text[: width - 1] + ELLIPSIS


def clock(moment: float) -> str:
    return time.strftime("%H:%M:%S", time.localtime(moment))


def _cells(rec: dict[str, Any]) -> list[str]:
    mic = "-"
    if rec["mic_present"] is False:
        mic = "MISSING"
    elif isinstance(rec["mic_level_dbfs"], int | float):
        mic = f"{rec['mic_level_dbfs']:.0f} dBFS"
    backlog = "-"
    if rec["backlog_recordings"] is not None:
        backlog = f"{rec['backlog_recordings']} rec / {size(rec['backlog_bytes'])}"
    where = str(rec["presence"])
    if where == "offline" and rec["offline_reason"]:
        where += f" ({rec['offline_reason']})"
    raw = [
        rec["device_id"],
        where,
        rec["state"] or "-",
        age(rec["age_s"]),
        backlog,
        mic,
        rec["version"] or "-",
        ", ".join(rec["alerts"]) or "-",
    ]
    return [clean(str(cell)) for cell in raw]


def columns(rows: Sequence[Sequence[str]], width: int | None) -> list[tuple[int, int]]:
    """(column index, width) of the columns shown, least important dropped to fit."""
    natural = [max([len(name)] + [len(r[i]) for r in rows]) for i, name in enumerate(COLUMNS)]
    if width is None:
        return list(enumerate(natural))
    widths = {n: min(natural[i], CAPS.get(n, natural[i])) for i, n in enumerate(COLUMNS)}
    shown = list(COLUMNS)
    alerts_need = min(natural[-1], MIN_ALERTS)

    def fixed() -> int:
        return sum(widths[n] for n in shown[:-1]) + len(GAP) * (len(shown) - 1)

    for name in DROP_ORDER:
        if fixed() + alerts_need <= width:
            break
        shown.remove(name)
    for name, least in (("DEVICE", MIN_DEVICE), ("PRESENCE", len("offline"))):
        over = fixed() + alerts_need - width
        if over > 0:  # a tiny terminal: narrow what is left
            widths[name] = max(min(least, widths[name]), widths[name] - over)
    widths["ALERTS"] = max(1, min(natural[-1], width - fixed()))
    return [(COLUMNS.index(n), widths[n]) for n in shown]


def _join(cells: Sequence[str], layout: Sequence[tuple[int, int]], width: int | None) -> str:
    line = GAP.join(fit(cells[i], w).ljust(w) for i, w in layout).rstrip()
    return fit(line, width)


def _tone(rec: dict[str, Any]) -> str:
    if rec["presence"] in ("offline", "stale"):
        return RED
    if rec["alerts"]:
        return YELLOW
    return GREEN if rec["presence"] == "online" else ""


def counts_text(records: Sequence[dict[str, Any]]) -> str:
    """'50 devices, 41 online, 5 offline, 4 stale, 12 with problems, 7 recording, ...'."""
    total = len(records)
    presences = [r["presence"] for r in records]
    parts = [f"{total} device{'' if total == 1 else 's'}", f"{presences.count('online')} online"]
    parts += [
        f"{presences.count(p)} {p}" for p in ("offline", "stale", "unknown") if p in presences
    ]
    problems = sum(1 for r in records if r["rank"] < FIRST_HEALTHY_RANK)
    parts.append(f"{problems} with problems")
    online_states = [r["state"] for r in records if r["presence"] == "online"]
    parts += [
        f"{online_states.count(s)} {s}"
        for s in ("recording", "paused", "idle")
        if s in online_states
    ]
    return ", ".join(parts)


def _title(source: str, now: float, width: int | None) -> str:
    left, right = f"edge-recorder fleet  {clean(source)}", clock(now)
    if width is None:
        return f"{left}  {right}"
    room = width - len(right) - 2
    if room < 1:
        return fit(right, width)
    return fit(left, room).ljust(room) + "  " + right


def frame(view: FleetView, now: float, screen: Screen, *, color: bool = False) -> Frame:
    """The screen as lines (at most screen.height when it leaves room for one row)."""
    width = screen.width
    records = [record(row, now) for row in ordered(view, now)]
    header = [_title(screen.source or view.prefix, now, width), fit(counts_text(records), width)]
    if color:
        header[1] = f"{DIM}{header[1]}{RESET}" if header[1] else header[1]
    if screen.broker_lost_since is not None:
        banner = fit(f"BROKER LOST since {clock(screen.broker_lost_since)} (reconnecting)", width)
        header.append(f"{RED}{banner}{RESET}" if color else banner)
    rows = [_cells(r) for r in records]
    layout = columns(rows, width)
    per_page = len(rows) or 1
    if screen.height is not None:
        per_page = max(1, screen.height - len(header) - 2)  # column titles + footer
    pages = max(1, -(-len(rows) // per_page))
    page = min(max(1, screen.page), pages)
    first = (page - 1) * per_page
    lines = [*header, _join(COLUMNS, layout, width)]
    for rec, cells in zip(
        records[first : first + per_page], rows[first : first + per_page], strict=True
    ):
        text = _join(cells, layout, width)
        tone = _tone(rec)
        lines.append(f"{tone}{text}{RESET}" if color and tone else text)
    if rows:
        footer = f"rows {first + 1}-{min(first + per_page, len(rows))} of {len(rows)}"
        if pages > 1:
            footer += f"  page {page}/{pages}"
    else:
        footer = "no devices yet"
    if screen.hint:
        footer += f"  ({screen.hint})"
    footer = fit(footer, width)
    lines.append(f"{DIM}{footer}{RESET}" if color else footer)
    return Frame(lines, page, pages, per_page)


_KEYS = {b" ": "next", b"\x1b[6~": "next", b"b": "prev", b"\x1b[5~": "prev"}
_KEYS |= {b"q": "quit", b"Q": "quit"}


def keys(data: bytes) -> list[str]:
    """Paging actions in what a cbreak terminal sent: space/PgDn next, b/PgUp prev, q quit."""
    found: list[str] = []
    at = 0
    while at < len(data):
        for sequence, action in _KEYS.items():
            if data.startswith(sequence, at):
                found.append(action)
                at += len(sequence)
                break
        else:
            at += 1  # anything else (arrows, letters) is ignored
    return found


def turn(page: int, pages: int, action: str) -> int:
    """The page after a paging action (wraps to neither end)."""
    if action == "next":
        return min(page + 1, pages)
    if action == "prev":
        return max(page - 1, 1)
    return page


def render(
    view: FleetView,
    now: float,
    color: bool = False,
    *,
    width: int | None = None,
    height: int | None = None,
    page: int = 1,
    source: str | None = None,
    broker_lost_since: float | None = None,
) -> str:
    """The screen as text: header, column titles, one page of devices, footer.

    width/height None: no limit (every row, cells untruncated).
    """
    screen = Screen(width, height, page, source, broker_lost_since)
    return "\n".join(frame(view, now, screen, color=color).lines)
