"""The fleet model: presence by birth order, staleness by the device's clock, ranking, bounds."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from edge_recorder.dashboard.fleetstate import FleetState
from edge_recorder.dashboard.validate import Invalid, classify
from edge_recorder.fleet.watch import FleetView, presence, record
from tests.support.dashboard import SUMMARY_KEYS
from tests.unit.dashboard import payloads as P

MAX = 65536


def feed(
    fs: FleetState, leaf: str, device: str, body: dict[str, Any] | bytes, received: float = P.T0
) -> str | None:
    payload = body if isinstance(body, bytes) else P.encode(body)
    item = classify(P.PREFIX, P.topic(device, leaf), payload, MAX)
    assert item is not None
    return fs.apply(item, received)


def online(fs: FleetState, device: str, seq: int = 1, **status: Any) -> None:
    feed(fs, "availability", device, P.availability("online", seq))
    feed(fs, "status", device, P.status(device, birth_seq=seq, **status))


def codes(summary: dict[str, object]) -> list[str]:
    problems = summary["problems"]
    assert isinstance(problems, list)
    return [p["code"] for p in problems]


def pres(fs: FleetState, device: str, now: float = P.T0) -> object:
    return fs.summary(device, now)["presence"]


# ------------------------------------------------------------------ presence


def test_a_late_will_of_an_older_session_is_ignored() -> None:
    fs = FleetState(P.PREFIX)
    feed(fs, "availability", "a", P.availability("online", 5))
    feed(fs, "availability", "a", P.availability("offline", 4))  # the old session's will, late
    assert pres(fs, "a") == "online"
    feed(fs, "availability", "a", P.availability("offline", 5))  # this session died
    assert pres(fs, "a") == "offline"
    assert fs.summary("a", P.T0)["offline_reason"] == "lost"
    feed(fs, "availability", "a", P.availability("online", 6))
    assert pres(fs, "a") == "online"
    assert fs.summary("a", P.T0)["offline_reason"] is None


def test_an_online_after_an_offline_wins_whatever_the_numbers() -> None:
    fs = FleetState(P.PREFIX)
    feed(fs, "availability", "a", P.availability("online", 5))
    feed(fs, "availability", "a", P.availability("offline", 9))  # forged, claims a newer session
    assert pres(fs, "a") == "offline"
    feed(fs, "availability", "a", P.availability("online", 5))  # the device corrects it
    assert pres(fs, "a") == "online"
    feed(fs, "availability", "a", P.availability("online", 1))  # re-imaged: counter restarted
    assert pres(fs, "a") == "online"


def test_a_status_of_a_newer_session_proves_life() -> None:
    fs = FleetState(P.PREFIX)
    feed(fs, "availability", "a", P.availability("offline", 4))
    feed(fs, "status", "a", P.status("a", birth_seq=4))  # same session as the death: no
    assert pres(fs, "a") == "offline"
    feed(fs, "status", "a", P.status("a", birth_seq=5))
    assert pres(fs, "a") == "online"


def test_plain_text_availability() -> None:
    fs = FleetState(P.PREFIX)
    feed(fs, "availability", "x", b"offline")
    assert pres(fs, "x") == "offline"
    feed(fs, "availability", "x", b"online")
    assert pres(fs, "x") == "online"


OPS = st.lists(
    st.one_of(
        st.tuples(st.just("avail"), st.sampled_from(["online", "offline"]), st.integers(1, 6)),
        st.tuples(st.just("status"), st.just(""), st.integers(1, 6)),
        st.tuples(st.just("plain"), st.sampled_from(["online", "offline"]), st.just(0)),
    ),
    min_size=1,
    max_size=12,
)


@settings(max_examples=300, deadline=None)
@given(OPS)
def test_presence_matches_fleet_watch_for_any_order(ops: list[tuple[str, str, int]]) -> None:
    """Both views share fleet.presence_rule; this checks that each feeds it the same facts
    from the same bytes (the dashboard through its schema check, the watcher raw)."""
    view = FleetView(P.PREFIX)
    fs = FleetState(P.PREFIX)
    for kind, state, seq in ops:
        if kind == "avail":
            reason = "lost" if seq % 2 else "shutdown"  # which will won must show
            body = P.availability(state, seq, None if state == "online" else reason)
            leaf, payload = "availability", P.encode(body)
        elif kind == "status":
            leaf, payload = "status", P.encode(P.status("a", birth_seq=seq))
        else:
            leaf, payload = "availability", state.encode()
        view.apply(P.topic("a", leaf), payload, P.T0)
        feed(fs, leaf, "a", payload)
        summary, watched = fs.summary("a", P.T0), record(view.devices["a"], P.T0)
        assert summary["presence"] == presence(view.devices["a"], P.T0) == watched["presence"]
        assert summary["birth_seq"] == watched["birth_seq"]
        if summary["presence"] == "offline":
            assert summary["offline_reason"] == watched["offline_reason"]


# ------------------------------------------------------------------ staleness


def test_staleness_follows_the_devices_at_not_the_receive_time() -> None:
    fs = FleetState(P.PREFIX)
    feed(fs, "availability", "a", P.availability("online", 1))
    feed(fs, "status", "a", P.status("a", at=P.T0, interval_s=30.0), received=P.T0 + 80)
    assert pres(fs, "a", P.T0 + 89) == "online"
    assert pres(fs, "a", P.T0 + 91) == "stale"  # though it arrived only 11 s before
    summary = fs.summary("a", P.T0 + 91)
    assert summary["age_s"] == 91.0
    assert codes(summary) == ["stale"]
    assert summary["rank"] == 8


def test_a_retained_status_of_a_long_dead_device_is_stale_at_once() -> None:
    fs = FleetState(P.PREFIX)
    feed(fs, "status", "a", P.status("a", at=P.T0 - 3600), received=P.T0)
    assert pres(fs, "a", P.T0) == "stale"
    assert fs.summary("a", P.T0)["age_s"] == 3600.0
    assert fs.summary("a", P.T0)["at"] == P.iso(P.T0 - 3600)


# ------------------------------------------------------------------ ranking and counts


def build_fleet() -> FleetState:
    """One device per rank; names sort the opposite way so the test sees the ranking."""
    fs = FleetState(P.PREFIX)
    feed(fs, "availability", "n-offline", P.availability("online", 1))
    feed(fs, "status", "n-offline", P.status("n-offline", alarms=["spool_full"]))
    feed(fs, "availability", "n-offline", P.availability("offline", 1))
    online(fs, "m-error", state="error", error_reason="capture failed")
    online(fs, "l-alarm", alarms=["live_silent"])
    online(fs, "k-backlog", backlog={"recordings": 4, "bytes": 10**8, "oldest_age_s": 3600.0})
    online(fs, "j-micdead", mic={"present": False})
    online(fs, "i-clipping", mic={"peak_dbfs": 0.0})
    online(fs, "h-disk", system={"disk_free_bytes": 10**8})
    online(fs, "g-throttled", throttled={"under_voltage": True})
    online(fs, "f-stale", at=P.T0 - 600)
    online(fs, "e-bad")
    fs.apply(Invalid("e-bad", "schema", "schema: /state enum"), P.T0)
    online(fs, "d-recording", state="recording")
    online(fs, "c-paused", state="paused")
    online(fs, "b-idle")
    feed(fs, "events", "a-unknown", P.event("a-unknown", 1))
    return fs


RANKED = [
    "n-offline", "m-error", "l-alarm", "k-backlog", "j-micdead", "i-clipping", "h-disk",
    "g-throttled", "f-stale", "e-bad", "d-recording", "c-paused", "b-idle", "a-unknown",
]  # fmt: skip


def test_summaries_rank_problems_first_then_by_state() -> None:
    fs = build_fleet()
    summaries = fs.summaries(P.T0 + 5)
    assert [s["device_id"] for s in summaries] == RANKED
    assert [s["rank"] for s in summaries] == list(range(14))
    assert codes(summaries[0]) == ["offline"]  # an offline device's last status is not today's news
    assert summaries[-1]["presence"] == "unknown"


def test_equal_ranks_sort_by_device_id() -> None:
    fs = FleetState(P.PREFIX)
    for device in ("c", "a", "b"):
        online(fs, device)
    assert [s["device_id"] for s in fs.summaries(P.T0)] == ["a", "b", "c"]


def test_counts() -> None:
    fs = build_fleet()
    online(fs, "stopping", state="stopping")
    counts = fs.counts(P.T0 + 5)
    assert counts == {
        "total": 15,
        "online": 12,  # all but offline, stale and unknown
        "offline": 1,
        "stale": 1,
        "unknown": 1,
        "problem": 10,
        "recording": 1,
        "idle": 8,  # b-idle and the idle devices with problems
        "paused": 2,  # paused and stopping
    }


# ------------------------------------------------------------------ summary shape


def test_summary_has_exactly_the_contract_keys_and_no_patient_field() -> None:
    fs = FleetState(P.PREFIX)
    online(fs, "a", seq=3, state="recording", backlog={"recordings": 2, "bytes": 4096})
    feed(fs, "events", "a", P.event("a", 1, at=P.T0 + 3))
    summary = fs.summary("a", P.T0 + 10)
    assert set(summary) == SUMMARY_KEYS
    assert summary["encounter_ref"] == "3f9a0c1b2d4e"  # the opaque ref is all there is
    assert summary == summary | {
        "device_id": "a", "location": "Clinic B a", "presence": "online", "state": "recording",
        "rank": 10, "problems": [], "at": P.iso(P.T0), "age_s": 10.0, "interval_s": 30.0,
        "birth_seq": 3, "recording_seq": 2, "encounter_elapsed_s": 312.4, "uplink_service": "aas",
        "uplink_online": True, "backlog_recordings": 2, "backlog_bytes": 4096,
        "oldest_age_s": None, "mic_present": True, "mic_level_dbfs": -38.2, "mic_peak_dbfs": -12.5,
        "disk_free_bytes": 24_117_248_000, "disk_total_bytes": 31_268_536_320,
        "cpu_temp_c": 51.6, "version": "0.1.0", "bad_input_total": 0,
        "last_event_at": P.iso(P.T0 + 3), "offline_reason": None,
    }  # fmt: skip


def test_a_device_known_only_by_availability_has_every_key_null() -> None:
    fs = FleetState(P.PREFIX)
    feed(fs, "availability", "a", P.availability("online", 2))
    summary = fs.summary("a", P.T0)
    assert set(summary) == SUMMARY_KEYS
    assert summary["presence"] == "online" and summary["birth_seq"] == 2
    assert summary["state"] is None and summary["age_s"] is None and summary["rank"] == 13


# ------------------------------------------------------------------ events, births, bad input


def test_events_are_deduplicated_and_capped() -> None:
    fs = FleetState(P.PREFIX)
    for seq in range(1, 251):
        assert feed(fs, "events", "a", P.event("a", seq, at=P.T0 + seq)) == "a"
    assert feed(fs, "events", "a", P.event("a", 250, at=P.T0 + 250)) is None  # QoS 1 repeat
    restarted = P.event("a", 250, instance="0000beef", at=P.T0 + 251)  # same seq, new process
    assert feed(fs, "events", "a", restarted) == "a"
    late = P.event("a", 1, instance="0000beef", at=P.T0 + 100)  # delivered late, older `at`
    assert feed(fs, "events", "a", late) == "a"
    detail = fs.detail("a", P.T0)
    assert detail is not None
    events: list[dict[str, Any]] = detail["events"]  # type: ignore[assignment]
    assert len(events) == 200
    assert events[0] == restarted
    assert [e["seq"] for e in events[1:4]] == [250, 249, 248]  # newest first, by device time
    assert events[-1]["seq"] == 53  # the oldest arrivals were dropped
    assert late in events
    assert fs.summary("a", P.T0)["last_event_at"] == P.iso(P.T0 + 251)


def test_births_keep_a_verdict_newest_first_and_are_capped() -> None:
    fs = FleetState(P.PREFIX)
    feed(fs, "availability", "a", P.availability("online", 5), received=P.T0 + 1)
    feed(fs, "availability", "a", P.availability("offline", 4), received=P.T0 + 2)
    feed(fs, "availability", "a", P.availability("offline", 5, "shutdown"), received=P.T0 + 3)
    feed(fs, "availability", "a", b"online", received=P.T0 + 4)
    detail = fs.detail("a", P.T0 + 5)
    assert detail is not None
    assert detail["births"] == [
        {"received_at": P.T0 + 4, "at": None, "state": "online", "birth_seq": None,
         "reason": None, "verdict": "plain"},
        {"received_at": P.T0 + 3, "at": P.iso(P.T0), "state": "offline", "birth_seq": 5,
         "reason": "shutdown", "verdict": "accepted"},
        {"received_at": P.T0 + 2, "at": P.iso(P.T0), "state": "offline", "birth_seq": 4,
         "reason": "lost", "verdict": "stale_will"},
        {"received_at": P.T0 + 1, "at": P.iso(P.T0), "state": "online", "birth_seq": 5,
         "reason": "connected", "verdict": "accepted"},
    ]  # fmt: skip
    assert detail["availability"] == P.availability("offline", 5, "shutdown")
    for seq in range(6, 66):
        feed(fs, "availability", "a", P.availability("online", seq))
    again = fs.detail("a", P.T0)
    assert again is not None
    births: list[dict[str, Any]] = again["births"]  # type: ignore[assignment]
    assert len(births) == 50 and births[0]["birth_seq"] == 65


def test_bad_input_is_counted_per_device_and_raises_a_problem_for_an_hour() -> None:
    fs = FleetState(P.PREFIX)
    online(fs, "a")
    online(fs, "b")
    assert feed(fs, "status", "a", b"{garbage", received=P.T0 + 1) == "a"
    feed(fs, "status", "a", P.status("a", state="nope"), received=P.T0 + 2)
    for i in range(3):
        fs.apply(Invalid("a", "flood", "over 2/s"), P.T0 + 3 + i)
    detail = fs.detail("a", P.T0 + 10)
    assert detail is not None
    assert detail["bad_input"] == {"too_large": 0, "not_json": 1, "schema": 1,
                                   "wrong_device": 0, "flood": 3}  # fmt: skip
    assert detail["bad_input_last"] == {"kind": "flood", "reason": "over 2/s", "at": P.T0 + 5}
    summary = fs.summary("a", P.T0 + 10)
    assert summary["bad_input_total"] == 5
    assert codes(summary) == ["bad_input"]
    assert "5 bad messages" in summary["problems"][0]["text"]  # type: ignore[index]
    assert fs.summary("b", P.T0 + 10)["bad_input_total"] == 0
    assert fs.counts(P.T0 + 10)["problem"] == 1  # a, by its refused messages alone
    later = fs.summary("a", P.T0 + 3700)  # an hour on (its status long stale by then)
    assert "bad_input" not in codes(later)
    assert later["bad_input_total"] == 5


def test_a_flood_is_folded_in_as_one_count() -> None:
    """The ingest reports a second of refused messages as one item with their count: the
    same totals and hourly window as one item each, for one call instead of hundreds."""
    one_by_one, at_once = FleetState(P.PREFIX), FleetState(P.PREFIX)
    for fs in (one_by_one, at_once):
        online(fs, "a")
    flood = Invalid("a", "flood", "over 2/s")
    for _ in range(200):
        one_by_one.apply(flood, P.T0 + 3)
    assert at_once.apply(flood, P.T0 + 3, 200) == "a"
    assert at_once.detail("a", P.T0 + 10) == one_by_one.detail("a", P.T0 + 10)
    assert at_once.summary("a", P.T0 + 10)["bad_input_total"] == 200
    at_once.apply(Invalid(None, "flood", "over 2/s"), P.T0 + 4, 7)
    assert at_once.unattributed["flood"] == 7


# ------------------------------------------------------------------ bounds and odd input


def test_devices_beyond_max_devices_are_counted_as_unattributed() -> None:
    fs = FleetState(P.PREFIX, max_devices=2)
    online(fs, "a")
    online(fs, "b")
    assert feed(fs, "status", "c", P.status("c")) is None
    assert feed(fs, "status", "c", b"{garbage") is None
    feed(fs, "status", "bad.id", P.status("a"))
    assert fs.device_ids() == ["a", "b"]
    assert fs.unattributed == {"too_large": 0, "not_json": 1, "schema": 0, "wrong_device": 1,
                               "flood": 0, "too_many_devices": 1}  # fmt: skip
    assert feed(fs, "status", "a", P.status("a", state="recording")) == "a"  # known ones go on


def test_command_responses_do_not_touch_the_fleet() -> None:
    fs = FleetState(P.PREFIX)
    assert feed(fs, "cmd/response", "a", P.response("a")) is None
    assert fs.device_ids() == []
    assert fs.detail("a", P.T0) is None


def test_detail_carries_the_last_status() -> None:
    fs = FleetState(P.PREFIX)
    online(fs, "a", state="recording")
    detail = fs.detail("a", P.T0)
    assert detail is not None
    assert set(detail) == {"summary", "status", "availability", "events", "births",
                           "bad_input", "bad_input_last"}  # fmt: skip
    assert detail["status"] == P.status("a", state="recording")
    assert detail["summary"] == fs.summary("a", P.T0)
    assert detail["bad_input_last"] is None and detail["events"] == []
