"""Commands over a real broker: every allowed command answers, bad input gets a clear error
answer (never a crash), retained commands are ignored, redeliveries are not re-executed."""

from __future__ import annotations

import json

import pytest

from edge_recorder.fleet.commands import ALLOWED_COMMANDS
from edge_recorder.status import encounter_ref
from tests.integration.fleet.conftest import DEVICE, PREFIX
from tests.integration.fleet.fakes import DEVICE_REF_KEY, PATIENT_CORRELATION_ID

BASE = f"{PREFIX}/{DEVICE}"
RESPONSE = f"{BASE}/cmd/response"


def response_to(request_id: str | None, after: int = 0):
    def match(message) -> bool:
        return message.topic == RESPONSE and message.json()["request_id"] == request_id

    return match


@pytest.fixture
async def device(mosquitto_broker, make_config, collect, start_reporter):
    """A connected reporter, its fake daemon and a collector that sees everything."""
    watcher = collect(mosquitto_broker)
    reporter, daemon = await start_reporter(make_config(mosquitto_broker, max_command_bytes=1024))
    await watcher.await_for(lambda m: m.topic == f"{BASE}/availability")
    return reporter, daemon, watcher


async def ask(watcher, name: str, body: object, request_id: str | None, after: int | None = None):
    mark = watcher.count() if after is None else after
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    watcher.publish(f"{BASE}/cmd/{name}", raw)
    return (await watcher.await_for(response_to(request_id), after=mark)).json()


async def test_every_command_round_trip(device) -> None:
    _reporter, daemon, watcher = device
    context = {"correlation_id": PATIENT_CORRELATION_ID, "external_user_id": "dr-who"}
    started = await ask(watcher, "start", {"request_id": "s1", "context": context}, "s1")
    assert started["ok"] and started["state"] == "recording"
    assert started["result"] == {
        "encounter_ref": encounter_ref(PATIENT_CORRELATION_ID, DEVICE_REF_KEY),
        "recording_seq": 1,
    }
    assert daemon.requests[-1].context is not None
    assert daemon.requests[-1].context.external_user_id == "dr-who"  # reached the daemon
    answers = {"start": started}
    for name in ("pause", "resume", "identify", "ping", "reload", "spool_retry", "stop"):
        answers[name] = await ask(watcher, name, {"request_id": f"r-{name}"}, f"r-{name}")
        assert answers[name]["ok"], answers[name]
        assert answers[name]["command"] == name
    assert set(answers) == set(ALLOWED_COMMANDS)
    assert answers["pause"]["state"] == "paused" and answers["stop"]["state"] == "idle"
    assert answers["ping"]["result"] == {"pong": True}
    assert answers["spool_retry"]["result"] == {"retried": 2}
    assert [r.name for r in daemon.requests] == [
        "start",
        "pause",
        "resume",
        "identify",
        "ping",
        "reload",
        "spool_retry",
        "stop",
    ]
    # the status that followed the start names the encounter only by its opaque ref
    status = await watcher.await_for(
        lambda m: m.topic == f"{BASE}/status" and m.json()["state"] == "recording"
    )
    assert status.json()["encounter_ref"] == encounter_ref(PATIENT_CORRELATION_ID, DEVICE_REF_KEY)


async def test_refused_command_is_an_error_answer_without_patient_data(device) -> None:
    _, daemon, watcher = device
    await ask(
        watcher,
        "start",
        {"request_id": "s1", "context": {"correlation_id": PATIENT_CORRELATION_ID}},
        "s1",
    )
    await ask(watcher, "pause", {"request_id": "p1"}, "p1")
    answer = await ask(watcher, "pause", {"request_id": "p2"}, "p2")
    assert answer["ok"] is False and answer["error"]["code"] == "rejected"
    # the daemon's message named the correlation id; the answer names only the opaque ref
    ref = encounter_ref(PATIENT_CORRELATION_ID, DEVICE_REF_KEY)
    assert answer["error"]["message"] == f"cannot pause while paused (encounter ref:{ref})"
    assert answer["error"]["reason"] == "not_recording"
    assert len(daemon.requests) == 3


GARBAGE = [
    ("ping", b"\xff\xfe not utf-8", "invalid_json", None),
    ("ping", b"{not json", "invalid_json", None),
    ("ping", b"", "invalid_json", None),
    ("ping", b"[1, 2, 3]", "invalid_request", None),
    ("ping", b'"just a string"', "invalid_request", None),
    ("ping", b"{}", "invalid_request", None),
    ("ping", b'{"request_id": 7}', "invalid_request", None),
    ("ping", b'{"request_id": "bad id with spaces"}', "invalid_request", None),
    ("ping", b'{"request_id": "x1", "extra": 1}', "invalid_request", "x1"),
    ("stop", b'{"request_id": "x2", "context": {}}', "invalid_request", "x2"),
    (
        "start",
        b'{"request_id": "x3", "context": {"correlation_id": "no spaces!"}}',
        "invalid_request",
        "x3",
    ),
    ("reboot", b'{"request_id": "x4"}', "unknown_command", "x4"),
    ("status", b'{"request_id": "x5"}', "unknown_command", "x5"),
]


async def test_garbage_gets_an_error_answer_and_never_a_crash(device) -> None:
    reporter, daemon, watcher = device
    for name, body, code, request_id in GARBAGE:
        answer = await ask(watcher, name, body, request_id)
        assert answer["ok"] is False, (name, body)
        assert answer["error"]["code"] == code, (name, body, answer)
        assert "no spaces!" not in json.dumps(answer)  # received values are never echoed
    assert daemon.requests == []
    assert reporter.stats().commands_rejected == len(GARBAGE)
    assert (await ask(watcher, "ping", {"request_id": "alive"}, "alive"))["ok"]


async def test_oversized_payload_is_refused(device) -> None:
    _reporter, daemon, watcher = device
    big = {"request_id": "big", "context": {"data": {"blob": "x" * 5000}}}
    answer = await ask(watcher, "start", big, None)
    assert answer["error"]["code"] == "too_large" and answer["command"] == "start"
    assert daemon.requests == []
    assert (await ask(watcher, "ping", {"request_id": "after"}, "after"))["ok"]


async def test_retained_command_is_ignored(
    mosquitto_broker, make_config, collect, start_reporter
) -> None:
    watcher = collect(mosquitto_broker)
    watcher.publish(f"{BASE}/cmd/start", json.dumps({"request_id": "old"}), retain=True)
    _, daemon = await start_reporter(make_config(mosquitto_broker))
    await watcher.await_for(lambda m: m.topic == f"{BASE}/availability")
    # the retained start reached the device on SUBSCRIBE, before this ping
    assert (await ask(watcher, "ping", {"request_id": "p"}, "p"))["ok"]
    assert [r.name for r in daemon.requests] == ["ping"]
    assert not [m for m in watcher.messages if m.topic == RESPONSE and b'"old"' in m.payload]


async def test_redelivered_request_is_answered_once(device) -> None:
    _, daemon, watcher = device
    first = await ask(watcher, "start", {"request_id": "dup"}, "dup")
    mark = watcher.count()
    second = await ask(watcher, "start", {"request_id": "dup"}, "dup", after=mark)
    assert first == second  # the same answer, not "already recording"
    assert [r.name for r in daemon.requests] == ["start"]


async def test_handler_exception_and_timeout_are_answered(
    mosquitto_broker, make_config, collect, start_reporter
) -> None:
    watcher = collect(mosquitto_broker)
    _, daemon = await start_reporter(make_config(mosquitto_broker), command_timeout_s=0.2)
    await watcher.await_for(lambda m: m.topic == f"{BASE}/availability")
    daemon.raise_on.add("reload")
    answer = await ask(watcher, "reload", {"request_id": "boom"}, "boom")
    assert answer["error"] == {"code": "handler_error", "message": "RuntimeError", "reason": None}

    async def never(_request):
        import asyncio

        await asyncio.Event().wait()

    daemon.execute = never  # type: ignore[method-assign]
    answer = await ask(watcher, "identify", {"request_id": "slow"}, "slow")
    assert answer["error"]["code"] == "timeout"
