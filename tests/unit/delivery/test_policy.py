"""The delivery engine's pure rules: back-off, error classification, message sizes."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge_recorder.delivery.policy import (
    Action,
    backoff_s,
    data_format,
    decide,
    live_chunk_bytes,
    message_bytes,
    resume_point,
)
from edge_recorder.uplinks.base import ErrorKind, UplinkError


def err(kind: ErrorKind, retry_after_s: float | None = None) -> UplinkError:
    return UplinkError(kind, "server words", transport="grpc", retry_after_s=retry_after_s)


def test_backoff_doubles_from_initial_and_caps() -> None:
    mid = [backoff_s(n, 1.0, 60.0, rand=lambda: 1.0) for n in range(1, 10)]
    assert mid == [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 60.0, 60.0, 60.0]


def test_backoff_jitter_is_between_half_and_full_schedule() -> None:
    assert backoff_s(3, 1.0, 60.0, rand=lambda: 0.0) == 2.0
    assert backoff_s(3, 1.0, 60.0, rand=lambda: 0.5) == 3.0


@given(
    attempt=st.integers(min_value=-5, max_value=10_000),
    initial=st.floats(min_value=0.01, max_value=100),
    cap=st.floats(min_value=0.01, max_value=1000),
    r=st.floats(min_value=0, max_value=1),
)
def test_backoff_never_exceeds_cap_nor_goes_below_half_initial(
    attempt: int, initial: float, cap: float, r: float
) -> None:
    delay = backoff_s(attempt, initial, cap, rand=lambda: r)
    assert min(initial, max(cap, initial)) / 2 <= delay + 1e-9
    assert delay <= max(cap, initial) + 1e-9


def test_retry_after_is_honoured_up_to_the_cap() -> None:
    assert backoff_s(1, 1.0, 60.0, retry_after_s=10.0, rand=lambda: 0.0) == 10.0
    assert backoff_s(1, 1.0, 60.0, retry_after_s=600.0, rand=lambda: 0.0) == 60.0


@pytest.mark.parametrize("phase", ["live", "resume", "rest"])
def test_invalid_request_quarantines_with_a_reason(phase: str) -> None:
    decision = decide(err(ErrorKind.INVALID), phase)  # type: ignore[arg-type]
    assert decision.action is Action.QUARANTINE
    assert decision.alert and "server words" in decision.reason


def test_invalid_start_processing_backs_off_loudly() -> None:
    decision = decide(err(ErrorKind.INVALID), "processing")
    assert decision.action is Action.BACKOFF and decision.alert


@pytest.mark.parametrize("kind", [ErrorKind.AUTH, ErrorKind.FORBIDDEN])
def test_refusal_backs_off_and_says_the_service_refuses(kind: ErrorKind) -> None:
    decision = decide(err(kind), "live")
    assert decision.action is Action.BACKOFF and decision.refusing and decision.alert


@pytest.mark.parametrize(
    ("phase", "action"),
    [
        ("live", Action.STORE_FORWARD),
        ("resume", Action.STORE_FORWARD),
        ("processing", Action.REDELIVER),
        ("rest", Action.BACKOFF),
    ],
)
def test_not_found_depends_on_where(phase: str, action: Action) -> None:
    decision = decide(err(ErrorKind.NOT_FOUND), phase)  # type: ignore[arg-type]
    assert decision.action is action and decision.alert


@pytest.mark.parametrize(
    ("phase", "action"),
    [("live", Action.RESYNC), ("resume", Action.RESYNC), ("rest", Action.QUARANTINE)],
)
def test_conflicts(phase: str, action: Action) -> None:
    assert decide(err(ErrorKind.CONFLICT), phase).action is action  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "kind", [ErrorKind.THROTTLED, ErrorKind.UNAVAILABLE, ErrorKind.SERVER, ErrorKind.PROTOCOL]
)
@pytest.mark.parametrize("phase", ["live", "resume", "rest", "processing"])
def test_transient_errors_back_off(kind: ErrorKind, phase: str) -> None:
    decision = decide(err(kind), phase)  # type: ignore[arg-type]
    assert decision.action is Action.BACKOFF and not decision.refusing
    assert decision.alert == (kind is not ErrorKind.UNAVAILABLE)  # an outage is not news


def test_every_kind_has_a_decision_in_every_phase() -> None:
    for kind in ErrorKind:
        for phase in ("live", "resume", "rest", "processing"):
            assert decide(err(kind), phase).reason  # type: ignore[arg-type]


def test_message_sizes_live_then_backlog() -> None:
    live = live_chunk_bytes("pcm16", 16000, 1, 100)
    assert live == 3200
    assert message_bytes(0, live, 256 * 1024) == 0
    assert message_bytes(3200, live, 256 * 1024) == 3200  # keeping up: ~100 ms messages
    assert message_bytes(6400, live, 256 * 1024) == 3200
    assert message_bytes(10 * 3200, live, 256 * 1024) == 10 * 3200  # behind: drain in bulk
    assert message_bytes(10**9, live, 256 * 1024) == 256 * 1024  # never above the maximum


@given(st.integers(min_value=0, max_value=10**9), st.integers(min_value=1, max_value=10**6))
def test_message_never_empty_nor_beyond_available(available: int, max_chunk: int) -> None:
    size = message_bytes(available, 3200, max_chunk)
    assert (size == 0) == (available == 0)
    assert size <= available


def test_formats() -> None:
    assert data_format("pcm16", 16000, 1).kind == "pcm"
    assert data_format("pcm16", 16000, 1).bytes_per_second == 32000
    assert data_format("opus", 16000, 1).kind == "opus"
    assert data_format("flac", 16000, 1).kind == "byte_stream"
    assert live_chunk_bytes("opus", 16000, 1, 100) >= 256


def test_resume_point_power_cut_only_when_server_is_ahead_of_a_closed_recording() -> None:
    assert resume_point(1000, 400, closed=False) == (400, False)
    assert resume_point(1000, 1000, closed=True) == (1000, False)
    assert resume_point(1000, 1200, closed=True) == (1200, True)


def test_processing_shortfall_only_when_the_service_holds_less() -> None:
    from edge_recorder.delivery.backlog import processing_shortfall

    assert processing_shortfall(2, 300, [100, 200]) == ""
    assert processing_shortfall(2, 310, [100, 200]) == ""  # more: bytes sent before a power cut
    assert "1 recording(s) / 200 bytes" in processing_shortfall(1, 200, [100, 200])
    assert "audio kept" in processing_shortfall(2, 250, [100, 200])


def test_missing_recordings_single_out_the_lost_ones_or_refuse_to_guess() -> None:
    from edge_recorder.delivery.policy import missing_recordings

    lengths = {"a": 100, "b": 250, "c": 400}
    assert missing_recordings(2, 500, lengths) == ["b"]
    assert missing_recordings(1, 250, lengths) == ["a", "c"]
    assert missing_recordings(3, 750, lengths) is None  # nothing lost
    assert missing_recordings(2, 510, lengths) is None  # no recording is 240 bytes long
    assert missing_recordings(2, 650, {"a": 100, "b": 100, "c": 550}) is None  # a or b?
    assert missing_recordings(2, 900, lengths) is None  # holds more than delivered
