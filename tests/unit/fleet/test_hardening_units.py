"""The pure parts of the MQTT hardening (issue #19): token buckets, the duplicate memory they
bound, hostile bodies, the retained-topic guard, and a dashboard's view of a forged offline."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime

import pytest

from edge_recorder.fleet import payloads
from edge_recorder.fleet.commands import (
    DEDUP_TTL_S,
    MAX_DEPTH,
    Accepted,
    BodyError,
    RecentResponses,
    Rejected,
    decode_body,
    parse_command,
    request_id_of,
)
from edge_recorder.fleet.limits import CommandLimits, TokenBucket, command_class
from edge_recorder.fleet.outbox import Message, Outbox
from edge_recorder.fleet.presence import CORRECTION_BURST, CORRECTION_EVERY_S, RetainedGuard
from edge_recorder.fleet.watch import FleetView, presence

NOW = datetime(2026, 11, 21, 8, 0, tzinfo=UTC)


# ---------------------------------------------------------------- token buckets


def test_token_bucket_starts_full_refills_and_says_when() -> None:
    bucket = TokenBucket(rate=2.0, burst=3, now=0.0)
    assert [bucket.take(0.0) for _ in range(4)] == [True, True, True, False]
    assert bucket.wait_s(0.0) == pytest.approx(0.5)
    assert not bucket.take(0.4)
    assert bucket.take(0.5)
    assert bucket.take(10.0) and bucket.take(10.0) and bucket.take(10.0)  # capped at burst
    assert not bucket.take(10.0)


def test_no_window_ever_admits_more_than_most_in() -> None:
    rng = random.Random(19)
    bucket = TokenBucket(rate=3.0, burst=7, now=0.0)
    taken: list[float] = []
    t = 0.0
    for _ in range(20_000):
        t += rng.expovariate(40.0)  # ~40 attempts a second: far over the limit
        if bucket.take(t):
            taken.append(t)
    window = 5.0
    bound = bucket.most_in(window)
    start = 0
    for end, at in enumerate(taken):
        while at - taken[start] >= window:
            start += 1
        assert end - start + 1 <= bound


def test_command_classes_have_separate_buckets() -> None:
    limits = CommandLimits(rate=1.0, burst=5, now=0.0)
    assert command_class("ping") == "other" and command_class("reboot") == "other"
    assert command_class("start") == "state"
    assert sum(limits.admit("ping", 0.0) for _ in range(50)) == 5
    assert all(limits.admit("start", 0.0) for _ in range(5))  # a ping flood took none of these
    assert not limits.admit("stop", 0.0)


# ---------------------------------------------------------------- the duplicate memory


def test_duplicate_memory_keeps_every_admitted_id_for_the_whole_ttl() -> None:
    """Thousands of state changes at 50/s against a 2/s limit for 20 simulated minutes:
    every admitted id is still known until its TTL ends, and memory stays bounded."""
    limits = CommandLimits(rate=2.0, burst=20, now=0.0)
    capacity = limits.most_state_changes_in(DEDUP_TTL_S)
    recent = RecentResponses(capacity)
    admitted: list[tuple[float, str]] = []
    t, n, largest = 0.0, 0, 0
    while t < 1200.0:
        t += 0.02
        n += 1
        if limits.admit("start", t):
            new, _ = recent.claim("start", f"id-{n}", t)
            assert new
            admitted.append((t, f"id-{n}"))
            largest = max(largest, len(recent))
        if n % 500 == 0:  # replay every id that is still within its TTL
            for at, request_id in admitted:
                if t - at < DEDUP_TTL_S:
                    assert recent.claim("start", request_id, t)[0] is False, (t, at)
    assert recent.evicted == 0
    assert largest <= capacity == 20 + 600
    assert len(admitted) > 2000


# ---------------------------------------------------------------- hostile bodies

HOSTILE: list[tuple[bytes, str | None]] = [
    (b'{"request_id":"a","n":' + b"1" * 5000 + b"}", "a"),
    (b'{"request_id":"b","n":-' + b"1" * 65 + b"}", "b"),
    (b'{"request_id":"c","n":1.' + b"5" * 70 + b"}", "c"),
    (b'{"request_id":"d","n":NaN}', "d"),
    (b'{"request_id":"e","n":-Infinity}', "e"),
    (b'{"request_id":"f","n":1e400}', "f"),
    (b'{"request_id":"g","s":"\\ud800"}', "g"),
    (b'{"request_id":"h","\\udfff":1}', "h"),
    (b'{"request_id":"i","x":' + b"[" * (MAX_DEPTH) + b"]" * (MAX_DEPTH) + b"}", "i"),
    (b"[" * 100_000 + b"]" * 100_000, None),
    (b'{"a":' * 50_000 + b"1" + b"}" * 50_000, None),
    (b"\xff\xfe", None),
    (b"\xed\xa0\x80", None),  # a surrogate encoded as UTF-8: not UTF-8
    (b"{", None),
    (b"", None),
]


@pytest.mark.parametrize(("body", "request_id"), HOSTILE)
def test_hostile_bodies_are_refused_with_invalid_json(body: bytes, request_id: str) -> None:
    verdict = parse_command("ping", body, retained=False, max_bytes=1 << 20)
    assert isinstance(verdict, Rejected)
    assert verdict.code == "invalid_json" and verdict.request_id == request_id
    assert verdict.command == "ping"
    assert request_id_of(body) in (request_id, None)


def test_decode_body_raises_only_body_error() -> None:
    for body, _ in HOSTILE:
        try:
            value = decode_body(body)
        except BodyError:
            continue
        json.dumps(value, default=repr)  # decoded: the markers are checked by parse_command


def test_acceptable_limits_are_still_accepted() -> None:
    body = {
        "request_id": "ok",
        "context": {"data": {"n": int("9" * 64), "f": -1.5e300, "deep": [[[[[[]]]]]]}},
    }
    verdict = parse_command("start", json.dumps(body).encode(), retained=False, max_bytes=4096)
    assert isinstance(verdict, Accepted)


# ---------------------------------------------------------------- the reply lane


def test_dropped_answers_are_counted() -> None:
    box = Outbox(event_max=10, control_max=3)
    for n in range(5):
        box.put(Message("t/cmd/response", str(n).encode(), False, "response"))
    box.put(Message("ha/config", b"{}", True, "discovery"))
    assert box.control_dropped == 3 and box.responses_dropped == 3


# ---------------------------------------------------------------- the retained-topic guard

AVAIL = "p/dev/availability"
STATUS = "p/dev/status"


def test_guard_ignores_what_came_before_our_echo_and_overrules_what_came_after() -> None:
    guard = RetainedGuard([AVAIL, STATUS], now=0.0)
    guard.connected()
    old = b'{"state":"offline","birth_seq":4}'
    assert not guard.received(AVAIL, old)  # the retained copy from before our birth
    mine = b'{"state":"online","birth_seq":5}'
    guard.published(AVAIL, mine)
    assert not guard.received(AVAIL, mine)  # our echo
    forged = b'{"state":"offline","birth_seq":1000000000}'
    assert guard.received(AVAIL, forged)
    assert not guard.received(AVAIL, forged)  # already pending: one correction
    assert guard.due(0.0) == {AVAIL}
    assert guard.wait_s(0.0) is None
    assert not guard.received("p/dev/events", forged)  # not a guarded topic


def test_guard_paces_corrections() -> None:
    guard = RetainedGuard([AVAIL], now=0.0)
    guard.published(AVAIL, b"mine")
    guard.received(AVAIL, b"mine")
    for _ in range(CORRECTION_BURST):
        assert guard.received(AVAIL, b"theirs")
        assert guard.due(0.0) == {AVAIL}
    assert guard.received(AVAIL, b"theirs")
    assert guard.due(0.0) == set()  # a duplicate device id cannot make us spin
    assert guard.wait_s(0.0) == pytest.approx(CORRECTION_EVERY_S)
    assert guard.due(CORRECTION_EVERY_S) == {AVAIL}
    assert guard.corrections == CORRECTION_BURST + 1


# ---------------------------------------------------------------- a dashboard's view


def avail(view: FleetView, state: str, seq: int) -> None:
    reason = "connected" if state == "online" else "lost"
    body = payloads.availability_payload(state, seq, reason, NOW)  # type: ignore[arg-type]
    view.apply("p/dev/availability", payloads.encode(body), 0.0)


def test_an_online_after_a_forged_higher_offline_is_online() -> None:
    view = FleetView("p")
    avail(view, "online", 6)
    avail(view, "offline", 10**9)  # forged
    assert presence(view.devices["dev"], 0.0) == "offline"
    avail(view, "online", 6)  # the device puts its own back
    assert presence(view.devices["dev"], 0.0) == "online"
    avail(view, "offline", 5)  # a late will of an older session is still ignored
    assert presence(view.devices["dev"], 0.0) == "online"
