"""Problem rules, their rank order, and the two trends that need more than one status."""

from __future__ import annotations

from typing import Any

import pytest

from edge_recorder.dashboard.problems import (
    RANK,
    BadWindow,
    Problem,
    Trend,
    bad_input_problem,
    offline_problem,
    rank,
    stale_problem,
    status_problems,
)
from tests.unit.dashboard import payloads as P

GIB = 1024**3


def codes(body: dict[str, Any], trend: Trend | None = None) -> list[str]:
    return [p.code for p in status_problems(body, trend or Trend())]


def test_rank_order_is_the_contract() -> None:
    order = [
        "offline", "error", "alarm", "backlog_growing", "mic_dead", "mic_clipping",
        "array_mic_fault", "array_calibration_fallback", "disk_low", "throttled", "stale",
        "bad_input",
    ]  # fmt: skip
    assert sorted(RANK, key=RANK.__getitem__) == order
    # the microphone's warnings share a rank: clipping, and the array's two
    assert [RANK[c] for c in order] == [0, 1, 2, 3, 4, 5, 5, 5, 6, 7, 8, 9]


def test_the_arrays_status_warnings_are_problems_with_their_own_words() -> None:
    """A mic left out of the beam, or a calibration not used, is in the status's warnings
    only; the fleet page must still show it (the device's log says which mic and why)."""
    body = P.status("a", warnings=["max_duration", "array_mic_fault"])
    [problem] = status_problems(body, Trend())
    assert (problem.code, problem.severity) == ("array_mic_fault", "warning")
    assert "left out of the beam" in problem.text
    both = P.status("a", warnings=["array_calibration_fallback", "array_mic_fault"])
    assert codes(both) == ["array_mic_fault", "array_calibration_fallback"]
    left = [{"mic": 3, "reason": "silent"}, {"mic": 5, "reason": "weak"}]
    named = P.status("a", warnings=["array_mic_fault"], mic={"array_left_out": left})
    [problem] = status_problems(named, Trend())
    assert problem.text == "Array mic 3 silent, mic 5 weak: left out of the beam"
    assert codes(P.status("a", warnings=["auto_stop"])) == []


def test_rank_is_the_worst_problem_else_the_state() -> None:
    warn = Problem("disk_low", "warning", "x")
    worse = Problem("alarm", "error", "y")
    assert rank([warn, worse], "recording") == 2
    assert rank([warn], None) == 6
    assert [rank([], s) for s in ("recording", "paused", "stopping", "idle", None, "odd")] == [
        10, 11, 11, 12, 13, 13,
    ]  # fmt: skip


def test_a_healthy_status_has_no_problem() -> None:
    assert status_problems(P.status("a"), Trend()) == []
    assert status_problems(P.status("a", state="recording"), Trend()) == []


def test_error_state_and_delivery_error_make_one_error_problem() -> None:
    assert codes(P.status("a", state="error", error_reason="capture failed")) == ["error"]
    failing = {"code": "unauthorized", "message": "401", "at": P.iso(P.T0)}
    both = status_problems(P.status("a", state="error", error=failing), Trend())
    assert [p.code for p in both] == ["error"]
    assert both[0].severity == "error"
    assert "error state" in both[0].text and "unauthorized" in both[0].text
    assert codes(P.status("a", last_error=failing)) == []  # history, not an alert


def test_one_alarm_problem_per_alarm_name() -> None:
    found = status_problems(P.status("a", alarms=["spool_full", "live_silent"]), Trend())
    assert [(p.code, p.severity) for p in found] == [("alarm", "error"), ("alarm", "error")]
    assert ["spool_full" in found[0].text, "live_silent" in found[1].text] == [True, True]


def test_backlog_growing_by_age() -> None:
    old = {"recordings": 3, "bytes": 100, "oldest_age_s": 901.0}
    assert codes(P.status("a", backlog=old)) == ["backlog_growing"]
    assert codes(P.status("a", backlog=old | {"oldest_age_s": 900.0})) == []
    assert codes(P.status("a", backlog=old | {"recordings": 0})) == []


def test_backlog_growing_when_bytes_grew_in_each_of_the_last_three_statuses() -> None:
    trend = Trend()
    seen = []
    for i, size in enumerate([100, 200, 300, 400, 400]):
        body = P.status("a", at=P.T0 + 30 * i, backlog={"recordings": 1, "bytes": size,
                                                       "oldest_age_s": 10.0})  # fmt: skip
        assert trend.update(P.T0 + 30 * i, body)
        seen.append("backlog_growing" in codes(body, trend))
    assert seen == [False, False, False, True, False]  # 3 growths needed; a flat one clears


def test_a_repeated_status_neither_starts_nor_breaks_a_streak() -> None:
    trend = Trend()
    for i, size in enumerate([100, 200, 300]):
        body = P.status("a", backlog={"recordings": 1, "bytes": size})
        trend.update(P.T0 + i, body)
    assert not trend.update(P.T0 + 2, body)  # retained copy delivered again: same `at`
    assert trend.growth_streak == 2
    trend.update(P.T0 + 3, P.status("a", backlog={"recordings": 1, "bytes": 400}))
    assert trend.growth_streak == 3


def test_a_clock_set_back_starts_a_new_baseline() -> None:
    trend = Trend()
    trend.update(P.T0, P.status("a", backlog={"recordings": 1, "bytes": 100}))
    trend.update(P.T0 + 30, P.status("a", backlog={"recordings": 1, "bytes": 200}))
    assert trend.update(P.T0 - 3600, P.status("a", backlog={"recordings": 1, "bytes": 300}))
    assert trend.growth_streak == 0
    assert trend.update(P.T0 - 3570, P.status("a", backlog={"recordings": 1, "bytes": 400}))
    assert trend.growth_streak == 1


@pytest.mark.parametrize(
    ("mic", "text"),
    [
        ({"present": False}, "missing"),
        ({"digital_silence": True}, "silence"),
        ({"last_error": "device unplugged"}, "error"),
    ],
)
def test_mic_dead(mic: dict[str, Any], text: str) -> None:
    found = status_problems(P.status("a", mic=mic), Trend())
    assert [(p.code, p.severity) for p in found] == [("mic_dead", "error")]
    assert text in found[0].text


def test_mic_clipping_by_peak_or_by_new_clipped_samples() -> None:
    assert codes(P.status("a", mic={"peak_dbfs": -0.5})) == ["mic_clipping"]
    assert codes(P.status("a", mic={"peak_dbfs": -0.6})) == []
    trend = Trend()
    first = P.status("a", at=P.T0, mic={"clipped_samples": 10})
    trend.update(P.T0, first)
    assert codes(first, trend) == []  # a count alone says nothing: it may be from yesterday
    grew = P.status("a", at=P.T0 + 30, mic={"clipped_samples": 11})
    trend.update(P.T0 + 30, grew)
    assert codes(grew, trend) == ["mic_clipping"]
    same = P.status("a", at=P.T0 + 60, mic={"clipped_samples": 11})
    trend.update(P.T0 + 60, same)
    assert codes(same, trend) == []
    restarted = P.status("a", at=P.T0 + 90, mic={"clipped_samples": 0})
    trend.update(P.T0 + 90, restarted)
    assert codes(restarted, trend) == []


def test_disk_low_by_bytes_or_share() -> None:
    assert codes(P.status("a", system={"disk_free_bytes": GIB - 1})) == ["disk_low"]
    share = {"disk_free_bytes": 9 * GIB, "disk_total_bytes": 100 * GIB}
    assert codes(P.status("a", system=share)) == ["disk_low"]
    fine = {"disk_free_bytes": 11 * GIB, "disk_total_bytes": 100 * GIB}
    assert codes(P.status("a", system=fine)) == []
    unknown = {"disk_free_bytes": None, "disk_total_bytes": None}
    assert codes(P.status("a", system=unknown)) == []


@pytest.mark.parametrize(
    ("throttled", "system"),
    [
        ({"under_voltage": True}, {}),
        ({"throttled": True}, {}),
        ({"freq_capped": True}, {}),
        ({}, {"cpu_temp_c": 80.0}),
    ],
)
def test_throttled_now(throttled: dict[str, Any], system: dict[str, Any]) -> None:
    assert codes(P.status("a", throttled=throttled, system=system)) == ["throttled"]


def test_throttling_in_the_past_or_no_vcgencmd_is_not_a_problem() -> None:
    past = {"under_voltage_occurred": True, "throttled_occurred": True, "raw": 327680}
    assert codes(P.status("a", throttled=past, system={"cpu_temp_c": 79.9})) == []
    assert codes(P.status("a", system={"throttled": None, "cpu_temp_c": None})) == []


def test_problems_come_in_rank_order() -> None:
    body = P.status(
        "a",
        state="error",
        alarms=["spool_full"],
        backlog={"recordings": 1, "bytes": 1, "oldest_age_s": 2000.0},
        mic={"present": False, "peak_dbfs": 0.0},
        system={"disk_free_bytes": 10, "cpu_temp_c": 90.0},
    )
    found = codes(body)
    assert found == ["error", "alarm", "backlog_growing", "mic_dead", "mic_clipping", "disk_low",
                     "throttled"]  # fmt: skip
    assert found == sorted(found, key=RANK.__getitem__)


def test_presence_problems() -> None:
    assert offline_problem("lost") == Problem("offline", "error", "Offline (connection lost)")
    assert offline_problem(None).text == "Offline"
    stale = stale_problem(600, 30)
    assert (stale.code, stale.severity) == ("stale", "warning")
    assert "10m" in stale.text and "30s" in stale.text
    bad = bad_input_problem(3, "schema")
    assert (bad.code, bad.severity) == ("bad_input", "warning")
    assert "3 bad messages" in bad.text and "schema" in bad.text


def test_bad_window_counts_the_last_hour_and_stays_small() -> None:
    window = BadWindow()
    for second in range(0, 2 * 3600, 10):  # a message every 10 s for two hours
        window.add(P.T0 + second)
    now = P.T0 + 2 * 3600
    assert 355 <= window.count(now) <= 366  # one hour's worth, to the minute
    assert len(window.buckets) <= 61
    assert window.count(now + 3700) == 0
