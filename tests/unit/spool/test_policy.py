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


def test_a_refusal_holds_until_room_for_the_largest_append_is_back() -> None:
    from edge_recorder.spool.policy import RESUME_MARGIN, Refusal

    limits = SpaceLimits(max_bytes=10**9, high_water_ratio=0.8, reserve_free_bytes=1000)
    disk_full = Refusal("disk-full", free=5000)  # ENOSPC while statvfs said 5000 bytes free
    assert space_status(limits, 0, 5000, disk_full).alarm == "disk-full"
    assert not disk_full.cleared(limits, 0, 5000 + RESUME_MARGIN - 1)
    assert disk_full.cleared(limits, 0, 5000 + RESUME_MARGIN)
    reserve = Refusal("disk-reserve", free=1100)  # the spool's own check said no
    assert not reserve.cleared(limits, 0, 1000 + RESUME_MARGIN - 1)
    assert reserve.cleared(limits, 0, 1100 + RESUME_MARGIN)
    cap = Refusal("spool-full", free=PLENTY)
    assert not cap.cleared(limits, 10**9 - RESUME_MARGIN + 1, PLENTY)
    assert cap.cleared(limits, 10**9 - RESUME_MARGIN, PLENTY)
    assert space_status(limits, 0, PLENTY).alarm is None  # no refusal: the old rules alone
