"""Pure watermark and resume rules."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from edge_recorder.uplinks.aws.watermark import (
    SessionRecord,
    StreamPlan,
    confirmed_offset,
    coverage,
    plan_stream,
)

REC = SessionRecord("sid-1", 1000.0, 5000)


def test_plan_new_resume_and_expired() -> None:
    assert plan_stream(None, 0, 0.0, 60, "new") == StreamPlan("new", 0, False, 0)
    assert plan_stream(REC, 0, 1001.0, 60, "new") == StreamPlan("new", 0, False, 0)
    assert plan_stream(REC, 4000, 1059.0, 60, "new") == StreamPlan("sid-1", 4000, True, 5000)
    assert plan_stream(REC, 4000, 1060.0, 60, "new") is None  # window over
    assert plan_stream(None, 4000, 1001.0, 60, "new") is None  # confirmed bytes, no record


def test_record_round_trip_and_garbage() -> None:
    assert SessionRecord.load(REC.dump()) == REC
    assert SessionRecord.load("nonsense") is None and SessionRecord.load(None) is None


def test_first_stream_maps_seconds_to_whole_frames() -> None:
    kw = {"byte_rate": 32000, "block_align": 2, "start": 0, "prior_sent": 0}
    assert confirmed_offset(1.0, sent_to=10**6, **kw) == 32000
    assert confirmed_offset(0.00004, sent_to=10**6, **kw) == 0  # 1.28 bytes → 0 (whole frame)
    assert confirmed_offset(10.0, sent_to=1000, **kw) == 1000  # never beyond what was sent


def test_resumed_stream_subtracts_the_upper_bound_of_earlier_streams() -> None:
    # earlier stream sent at most 96000 bytes; this one starts at recording byte 64000
    kw = {"byte_rate": 32000, "block_align": 2, "start": 64000, "prior_sent": 96000}
    assert confirmed_offset(3.0, sent_to=200000, **kw) == 64000  # nothing new proven yet
    assert confirmed_offset(4.0, sent_to=200000, **kw) == 64000 + 32000


@given(
    received=st.integers(0, 10**6),
    extra=st.integers(0, 10**5),
    w=st.integers(0, 10**6),
    new=st.integers(0, 10**6),
    frac=st.floats(0, 1),
)
def test_watermark_never_claims_unreceived_audio(
    received: int, extra: int, w: int, new: int, frac: float
) -> None:
    """Service got `received` bytes earlier (device sent received+extra), then `new` bytes of
    this stream from recording byte w <= received. A segment ends somewhere in what it got."""
    w = min(w, received) - min(w, received) % 2
    session_bytes = int((received + new) * frac)
    got = confirmed_offset(
        session_bytes / 32000,
        byte_rate=32000,
        block_align=2,
        start=w,
        prior_sent=received + extra,
        sent_to=w + new,
    )
    truth = w + max(0, session_bytes - received)  # recording bytes provably held
    assert w <= got <= max(w, truth)


def test_coverage_reports_gaps_and_overlap() -> None:
    assert coverage([(0, 100), (60, 200)], 200) == ([], 40)
    assert coverage([(0, 100), (120, 200)], 200) == ([(100, 120)], 0)
    assert coverage([(0, 50)], 80) == ([(50, 80)], 0)
