"""The space policy as pure rules: high water refuses new encounters, the cap stops appends."""

from __future__ import annotations

import pytest

from edge_recorder.spool.errors import SpoolFull, SpoolRefused
from edge_recorder.spool.policy import (
    SpaceLimits,
    check_append,
    check_new_encounter,
    effective_cap,
    space_status,
)

LIMITS = SpaceLimits(max_bytes=1000, high_water_ratio=0.8, reserve_free_bytes=100)
PLENTY = 10**9


def test_new_encounter_admitted_below_high_water_refused_at_it() -> None:
    check_new_encounter(LIMITS, 799, PLENTY)
    with pytest.raises(SpoolRefused) as exc:
        check_new_encounter(LIMITS, 800, PLENTY)
    assert exc.value.reason == "spool-high-water"


def test_small_disk_lowers_the_high_water_mark() -> None:
    # 300 used + 500 free - 100 reserve = 700 really available; 80 % of it is 560.
    assert effective_cap(LIMITS, 300, 500) == 700
    check_new_encounter(LIMITS, 500, 300)  # cap 700, mark 560
    with pytest.raises(SpoolRefused) as exc:
        check_new_encounter(LIMITS, 600, 200)
    assert exc.value.reason == "disk-reserve"


def test_append_runs_to_the_cap_then_reports_full() -> None:
    check_append(LIMITS, 900, PLENTY, 100)
    with pytest.raises(SpoolFull) as exc:
        check_append(LIMITS, 901, PLENTY, 100)
    assert exc.value.reason == "spool-full"


def test_append_respects_the_disk_reserve() -> None:
    check_append(LIMITS, 0, 200, 100)
    with pytest.raises(SpoolFull) as exc:
        check_append(LIMITS, 0, 199, 100)
    assert exc.value.reason == "disk-reserve"


@pytest.mark.parametrize(
    ("used", "free", "alarm"),
    [(0, PLENTY, None), (800, PLENTY, "spool-high-water"), (1000, PLENTY, "spool-full"),
     (10, 50, "disk-reserve")],
)  # fmt: skip
def test_status_alarm(used: int, free: int, alarm: str | None) -> None:
    status = space_status(LIMITS, used, free)
    assert status.alarm == alarm and status.high_water_bytes == 800
