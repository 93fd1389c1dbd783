"""Command messages judged without a broker: allow list, bodies, sizes, replays."""

from __future__ import annotations

import json

import pytest

from edge_recorder.fleet.commands import (
    ALLOWED_COMMANDS,
    Accepted,
    RecentResponses,
    Rejected,
    parse_command,
)
from edge_recorder.fleet.topics import DeviceTopics, fleet_filters, split_device_topic
from tests.integration.fleet.checks import validator


def judge(name: str, body: object, **kw: object):
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    options = {"retained": False, "max_bytes": 1024} | kw
    return parse_command(name, raw, **options)  # type: ignore[arg-type]


@pytest.mark.parametrize("name", ALLOWED_COMMANDS)
def test_every_allowed_command_is_accepted(name: str) -> None:
    verdict = judge(name, {"request_id": "r-1"})
    assert isinstance(verdict, Accepted)
    assert verdict.request.name == name and verdict.request_id == "r-1"


def test_start_carries_context_to_the_daemon() -> None:
    verdict = judge("start", {"request_id": "r", "context": {"correlation_id": "enc-1"}})
    assert isinstance(verdict, Accepted)
    assert verdict.request.context is not None
    assert verdict.request.context.correlation_id == "enc-1"


def test_retained_and_own_responses_are_ignored_silently() -> None:
    assert judge("start", {"request_id": "r"}, retained=True) is None
    assert judge("response", {"request_id": "r"}) is None


@pytest.mark.parametrize(
    ("name", "body", "code", "request_id"),
    [
        ("ping", b"x" * 2000, "too_large", None),
        ("ping", b"\xc3\x28", "invalid_json", None),
        ("ping", b"null", "invalid_request", None),
        ("ping", {"request_id": ""}, "invalid_request", None),
        ("ping", {"request_id": "a" * 65}, "invalid_request", None),
        ("ping", {"request_id": "ok", "context": {}}, "invalid_request", "ok"),
        ("start", {"request_id": "ok", "context": {"mrn": "123"}}, "invalid_request", "ok"),
        ("shutdown", {"request_id": "ok"}, "unknown_command", "ok"),
        ("shutdown", b"[]", "unknown_command", None),
    ],
)
def test_rejections(name: str, body: object, code: str, request_id: str | None) -> None:
    verdict = judge(name, body)
    assert isinstance(verdict, Rejected)
    assert (verdict.code, verdict.request_id) == (code, request_id)


def test_rejection_text_never_echoes_values() -> None:
    verdict = judge("start", {"request_id": "r", "context": {"correlation_id": "John Doe!"}})
    assert isinstance(verdict, Rejected)
    assert "John" not in verdict.message and "context.correlation_id" in verdict.message


@pytest.mark.parametrize(
    "body",
    [
        {"request_id": "a"},
        {"request_id": "a.b:c-d_e"},
        {"request_id": "a", "context": {"correlation_id": "x|y"}},
        {"request_id": " a"},
        {"request_id": "a", "extra": 1},
        {"request_id": "a", "context": {"who": 1}},
        {},
        {"request_id": 5},
    ],
)
def test_schema_and_pydantic_agree_on_start_bodies(body: dict[str, object]) -> None:
    accepted = isinstance(judge("start", body), Accepted)
    assert validator("command-request").is_valid(body) == accepted


def test_recent_responses_dedupe_state_changes_only() -> None:
    recent = RecentResponses(capacity=2, ttl_s=300.0)
    assert recent.claim("start", "a", 0.0) == (True, None)
    assert recent.claim("start", "a", 1.0) == (False, None)  # still running
    recent.answer("start", "a", b"answer")
    assert recent.claim("start", "a", 2.0) == (False, b"answer")
    assert recent.claim("identify", "a", 3.0) == (True, None)
    assert recent.claim("identify", "a", 4.0) == (True, None)  # harmless: every press counts
    assert recent.claim("start", "a", 300.0) == (True, None)  # the TTL has passed


def test_topics() -> None:
    topics = DeviceTopics("fleet/site-a", "exam-1")
    assert topics.command_name("fleet/site-a/exam-1/cmd/ping") == "ping"
    assert topics.command_name("fleet/site-a/exam-1/cmd/a/b") is None
    assert topics.command_name("fleet/site-a/exam-2/cmd/ping") is None
    assert topics.response == "fleet/site-a/exam-1/cmd/response"
    assert fleet_filters("p") == ["p/+/availability", "p/+/status", "p/+/events"]
    assert split_device_topic("fleet/site-a", "fleet/site-a/exam-1/status") == ("exam-1", "status")
    assert split_device_topic("fleet/site-a", "fleet/site-a/exam-1/cmd/x") is None
    assert split_device_topic("fleet/site-a", "other/exam-1/status") is None
