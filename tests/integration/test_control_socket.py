"""The control socket on a real Unix socket in tmp_path, with a fake CommandHandler behind it.

Whatever a client sends, it gets an error reply and the server keeps serving others.
"""

from __future__ import annotations

import asyncio
import io
import json
import socket
import stat
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from edge_recorder.config.model import ControlConfig
from edge_recorder.control import server as control
from edge_recorder.control.server import ControlError, ControlServer
from edge_recorder.status import (
    BacklogStatus,
    CommandRequest,
    CommandResult,
    DeviceStatus,
    MicStatus,
)
from edge_recorder.support.logs import setup_logging
from tests.support.helpers import async_poll_until

SECRET_MRN = "MRN-99812"


class FakeHandler:
    """Records requests; `mode` makes execute succeed, refuse, raise or hang."""

    def __init__(self) -> None:
        self.requests: list[CommandRequest] = []
        self.mode = "ok"
        self.released = asyncio.Event()

    async def execute(self, request: CommandRequest) -> CommandResult:
        self.requests.append(request)
        if self.mode == "raise":
            raise RuntimeError(f"boom with {SECRET_MRN}")
        if self.mode == "hang":
            await self.released.wait()
        if self.mode == "refuse":
            return CommandResult(ok=False, code="no_encounter", error="no encounter in progress")
        return CommandResult(ok=True, state="recording", data={"correlation_id": "c-1"})

    def status(self) -> DeviceStatus:
        return DeviceStatus(
            state="recording",
            correlation_id="c-1",
            recording_seq=1,
            backlog=BacklogStatus(recordings=3, bytes=4096),
            mic=MicStatus(present=True, device="fakemic", level_dbfs=-32.5),
        )


@pytest.fixture
def log_stream() -> io.StringIO:
    stream = io.StringIO()
    setup_logging("DEBUG", "logfmt", stream=stream, environ={})
    return stream


@pytest.fixture
def config(tmp_path: Path) -> ControlConfig:
    return ControlConfig(
        socket=tmp_path / "run" / "ctl.sock", max_request_bytes=512, read_timeout_s=0.3
    )


@pytest.fixture
async def server(config: ControlConfig) -> AsyncIterator[tuple[ControlServer, FakeHandler]]:
    handler = FakeHandler()
    srv = ControlServer(handler, config)
    await srv.start()
    yield srv, handler
    handler.released.set()
    await srv.close()


async def ask(
    path: Path, payload: bytes, replies: int = 1, *, eof: bool = False
) -> list[dict[str, Any]]:
    reader, writer = await asyncio.open_unix_connection(str(path))
    try:
        writer.write(payload)
        if eof:
            writer.write_eof()  # half-close: "that was all"
        await writer.drain()
        return [json.loads(await asyncio.wait_for(reader.readline(), 5)) for _ in range(replies)]
    finally:
        writer.close()


async def test_status_reply_is_the_device_status(server: tuple[ControlServer, Any]) -> None:
    srv, _ = server
    (reply,) = await ask(srv.path, b'{"cmd": "status"}\n')
    assert reply["ok"] is True and reply["state"] == "recording"
    assert reply["data"]["correlation_id"] == "c-1"
    assert reply["data"]["backlog"]["recordings"] == 3
    assert reply["data"]["mic"]["level_dbfs"] == -32.5


async def test_socket_mode_and_parent_dir(server: tuple[ControlServer, Any]) -> None:
    srv, _ = server
    mode = srv.path.stat().st_mode
    assert stat.S_ISSOCK(mode) and stat.S_IMODE(mode) == 0o660
    assert srv.path.parent.is_dir()


async def test_start_context_is_passed_on_but_never_logged(
    server: tuple[ControlServer, FakeHandler], log_stream: io.StringIO
) -> None:
    srv, handler = server
    context = {"correlation_id": "enc-7", "external_user_id": "dr-x", "data": {"mrn": SECRET_MRN}}
    (reply,) = await ask(
        srv.path, json.dumps({"cmd": "start", "context": context}).encode() + b"\n"
    )
    assert reply == {
        "ok": True,
        "error": None,
        "code": None,
        "state": "recording",
        "data": {"correlation_id": "c-1"},
    }
    (request,) = handler.requests
    assert request.name == "start" and request.context is not None
    assert request.context.data == {"mrn": SECRET_MRN}
    logged = log_stream.getvalue()
    assert "cmd=start" in logged
    for value in (SECRET_MRN, "dr-x", "enc-7"):
        assert value not in logged


@pytest.mark.parametrize(
    ("line", "code", "message_part"),
    [
        (b"hello there\n", "bad_json", "not valid JSON"),
        (b"\xff\xfe\x00garbage\n", "bad_request", "not UTF-8"),
        (b'["status"]\n', "bad_request", "must be a JSON object"),
        (b'{"command": "status"}\n', "bad_request", "unknown field(s) 'command'"),
        (b'{"cmd": 7}\n', "bad_request", "missing 'cmd'"),
        (b'{"cmd": "reboot"}\n', "unknown_command", "unknown cmd 'reboot'"),
        (b'{"cmd": "stop", "context": {}}\n', "bad_request", "only accepted with cmd 'start'"),
        (b'{"cmd": "start", "context": []}\n', "bad_context", "context"),
        (
            b'{"cmd": "start", "context": {"correlation_id": "MRN-99812 has spaces"}}\n',
            "bad_context",
            "context.correlation_id: String should match pattern",
        ),
        (b"[" * 100_000 + b"\n", "too_large", "longer than 512 bytes"),
    ],
)
async def test_bad_requests_get_an_error_reply(
    server: tuple[ControlServer, FakeHandler], line: bytes, code: str, message_part: str
) -> None:
    srv, handler = server
    (reply,) = await ask(srv.path, line)
    assert (reply["ok"], reply["code"]) == (False, code)
    assert message_part in reply["error"]
    assert SECRET_MRN not in reply["error"]  # bad input is never echoed back
    assert handler.requests == []
    (after,) = await ask(srv.path, b'{"cmd": "status"}\n')  # the server carries on
    assert after["ok"] is True


async def test_garbage_does_not_end_the_connection_but_oversize_does(
    server: tuple[ControlServer, Any],
) -> None:
    srv, _ = server
    first, second = await ask(srv.path, b'nonsense\n{"cmd": "status"}\n', replies=2)
    assert first["code"] == "bad_json" and second["ok"] is True
    reader, writer = await asyncio.open_unix_connection(str(srv.path))
    writer.write(b'{"cmd": "status", "x": "' + b"a" * 600 + b'"}\n{"cmd": "status"}\n')
    reply = json.loads(await asyncio.wait_for(reader.readline(), 5))
    assert reply["code"] == "too_large"
    assert await asyncio.wait_for(reader.read(), 5) == b""  # then the server hangs up
    writer.close()


async def test_pipelined_requests_are_answered_in_order(
    server: tuple[ControlServer, FakeHandler],
) -> None:
    srv, handler = server
    replies = await ask(srv.path, b'{"cmd":"pause"}\n\n{"cmd":"resume"}\n', replies=2)
    assert [r["ok"] for r in replies] == [True, True]
    assert [r.name for r in handler.requests] == ["pause", "resume"]


async def test_slow_client_times_out_and_others_are_served(
    server: tuple[ControlServer, Any],
) -> None:
    srv, _ = server
    reader, writer = await asyncio.open_unix_connection(str(srv.path))
    writer.write(b'{"cmd": "sta')  # half a request, then silence
    (other,) = await ask(srv.path, b'{"cmd": "status"}\n')  # served meanwhile
    assert other["ok"] is True
    reply = json.loads(await asyncio.wait_for(reader.readline(), 5))
    assert reply["code"] == "timeout" and "0.3 s" in reply["error"]
    assert await asyncio.wait_for(reader.read(), 5) == b""
    writer.close()


async def test_vanishing_clients_do_not_hurt(server: tuple[ControlServer, Any]) -> None:
    srv, _ = server
    for payload in (b"", b'{"cmd": "status"', b'{"cmd": "status"}\n'):
        _, writer = await asyncio.open_unix_connection(str(srv.path))
        writer.write(payload)
        writer.close()  # gone before (or while) the reply is written
    (reply,) = await ask(srv.path, b'{"cmd": "status"}', eof=True)  # EOF ends the line
    assert reply["ok"] is True


async def test_handler_failures_become_error_replies(
    server: tuple[ControlServer, FakeHandler],
    log_stream: io.StringIO,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    srv, handler = server
    handler.mode = "refuse"
    (refused,) = await ask(srv.path, b'{"cmd": "stop"}\n')
    assert refused["ok"] is False and refused["code"] == "no_encounter"
    handler.mode = "raise"
    (crashed,) = await ask(srv.path, b'{"cmd": "stop"}\n')
    assert crashed["code"] == "internal" and "RuntimeError" in crashed["error"]
    assert SECRET_MRN not in crashed["error"] and SECRET_MRN not in log_stream.getvalue()
    handler.mode = "hang"
    monkeypatch.setattr(control, "HANDLER_TIMEOUT_S", 0.2)
    (hung,) = await ask(srv.path, b'{"cmd": "stop"}\n')
    assert hung["code"] == "timeout"
    handler.mode = "ok"
    (fine,) = await ask(srv.path, b'{"cmd": "identify"}\n')
    assert fine["ok"] is True


async def test_too_many_clients_get_busy(
    server: tuple[ControlServer, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    srv, _ = server
    monkeypatch.setattr(control, "MAX_CLIENTS", 2)
    monkeypatch.setattr(control, "OVERFLOW_CLIENTS", 0)
    monkeypatch.setattr(control, "EVICT_IDLE_AFTER_S", 3600.0)
    idle = [await asyncio.open_unix_connection(str(srv.path)) for _ in range(2)]
    for reader, writer in idle:  # make sure both are being served
        writer.write(b'{"cmd": "status"}\n')
        assert json.loads(await asyncio.wait_for(reader.readline(), 5))["ok"]
    (busy,) = await ask(srv.path, b'{"cmd": "status"}\n')
    assert busy["code"] == "busy"
    assert srv.stats.busy == 1
    for _, writer in idle:
        writer.close()


async def test_stale_socket_is_replaced_live_one_is_not(config: ControlConfig) -> None:
    config.socket.parent.mkdir(parents=True)
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(config.socket))
    stale.close()  # the file stays behind, nobody listens: like after a crash
    first = ControlServer(FakeHandler(), config)
    await first.start()
    try:
        with pytest.raises(ControlError, match="already listening"):
            await ControlServer(FakeHandler(), config).start()
        (reply,) = await ask(config.socket, b'{"cmd": "status"}\n')  # still the first one
        assert reply["ok"]
    finally:
        await first.close()
    assert not config.socket.exists()  # removed on close


async def test_refuses_to_replace_a_regular_file_or_use_a_long_path(tmp_path: Path) -> None:
    path = tmp_path / "ctl.sock"
    path.write_text("not a socket")
    with pytest.raises(ControlError, match="is not a socket"):
        await ControlServer(FakeHandler(), ControlConfig(socket=path)).start()
    assert path.read_text() == "not a socket"
    long_path = tmp_path / ("d" * 120) / "ctl.sock"
    with pytest.raises(ControlError, match="too long"):
        await ControlServer(FakeHandler(), ControlConfig(socket=long_path)).start()


# ---------------------------------------------------------------- many clients: fair and quiet


@pytest.fixture
async def loop_errors() -> AsyncIterator[list[dict[str, Any]]]:
    """What the event loop's exception handler sees: an exception escaping a connection's
    task (asyncio would log it with a traceback, once per connection)."""
    loop = asyncio.get_running_loop()
    seen: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _loop, context: seen.append(context))
    yield seen
    loop.set_exception_handler(None)


async def hold(path: Path) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A connection that has been served once and then stays connected, idle."""
    reader, writer = await asyncio.open_unix_connection(str(path))
    writer.write(b'{"cmd": "status"}\n')
    assert json.loads(await asyncio.wait_for(reader.readline(), 5))["ok"]
    return reader, writer


async def test_busy_replies_to_clients_that_left_are_counted_not_logged(
    server: tuple[ControlServer, Any],
    monkeypatch: pytest.MonkeyPatch,
    loop_errors: list[dict[str, Any]],
    log_stream: io.StringIO,
) -> None:
    srv, _ = server
    monkeypatch.setattr(control, "MAX_CLIENTS", 1)
    monkeypatch.setattr(control, "OVERFLOW_CLIENTS", 0)
    monkeypatch.setattr(control, "EVICT_IDLE_AFTER_S", 3600.0)
    _, holder = await hold(srv.path)
    for _ in range(50):  # connect and leave before the server even accepts
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as gone:
            gone.connect(str(srv.path))
    await async_poll_until(lambda: srv.stats.busy == 50, what="50 busy answers")
    await async_poll_until(
        lambda: srv.stats.departed + len(loop_errors) == 50, what="50 replies that failed"
    )
    assert loop_errors == []  # before: "Unhandled exception in client_connected_cb" x 50
    assert srv.stats.departed == 50
    assert "Traceback" not in log_stream.getvalue()
    assert log_stream.getvalue().count("control client left before its reply") == 50
    assert "level=debug" in log_stream.getvalue().split("left before its reply")[0][-200:]
    holder.close()


async def test_clients_polling_status_cannot_lock_a_newcomer_out(
    server: tuple[ControlServer, Any], loop_errors: list[dict[str, Any]]
) -> None:
    srv, handler = server
    stop = asyncio.Event()
    answered = [0] * control.MAX_CLIENTS

    async def poll(n: int) -> None:  # ask, read, ask again, as fast as the server allows
        reader, writer = await asyncio.open_unix_connection(str(srv.path))
        try:
            while not stop.is_set():
                writer.write(b'{"cmd": "status"}\n')
                assert json.loads(await asyncio.wait_for(reader.readline(), 5))["ok"]
                answered[n] += 1
        finally:
            writer.close()

    pollers = [asyncio.create_task(poll(n)) for n in range(control.MAX_CLIENTS)]
    try:
        await async_poll_until(lambda: min(answered) >= 3, what="every poller served")
        (reply,) = await ask(srv.path, b'{"cmd": "identify"}\n')  # before: busy
        assert reply["ok"] is True, reply
        assert [r.name for r in handler.requests] == ["identify"]
    finally:
        stop.set()
        await asyncio.gather(*pollers, return_exceptions=True)
    assert all(p.exception() is None for p in pollers)
    assert loop_errors == []


async def test_a_newcomer_beyond_the_slots_gets_exactly_one_answer(
    server: tuple[ControlServer, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    srv, _ = server
    monkeypatch.setattr(control, "MAX_CLIENTS", 1)
    monkeypatch.setattr(control, "EVICT_IDLE_AFTER_S", 3600.0)
    _, holder = await hold(srv.path)
    reader, writer = await asyncio.open_unix_connection(str(srv.path))
    writer.write(b'{"cmd": "status"}\n{"cmd": "status"}\n')
    assert json.loads(await asyncio.wait_for(reader.readline(), 5))["ok"] is True
    assert await asyncio.wait_for(reader.read(), 5) == b""  # one-shot: then closed
    writer.close()
    holder.close()


async def test_an_idle_slot_holder_makes_room_for_a_newcomer(
    server: tuple[ControlServer, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    srv, _ = server
    monkeypatch.setattr(control, "MAX_CLIENTS", 2)
    monkeypatch.setattr(control, "OVERFLOW_CLIENTS", 0)
    monkeypatch.setattr(control, "EVICT_IDLE_AFTER_S", 0.0)  # idle at all: may be evicted
    (first_reader, first), (second_reader, second) = [await hold(srv.path) for _ in range(2)]
    replies = await ask(srv.path, b'{"cmd": "status"}\n{"cmd": "status"}\n', replies=2)
    assert [r["ok"] for r in replies] == [True, True]  # a slot: more than one request
    assert srv.stats.evicted == 1 and srv.stats.busy == 0
    assert await asyncio.wait_for(first_reader.read(), 5) == b""  # the longest idle: closed
    second.write(b'{"cmd": "status"}\n')  # the other one is still served
    assert json.loads(await asyncio.wait_for(second_reader.readline(), 5))["ok"] is True
    first.close()
    second.close()


async def test_a_client_asking_too_fast_is_slowed_down_not_cut_off(
    server: tuple[ControlServer, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    srv, _ = server
    monkeypatch.setattr(control, "REQUEST_RATE", 10.0)
    monkeypatch.setattr(control, "REQUEST_BURST", 2)
    loop = asyncio.get_running_loop()
    started = loop.time()
    replies = await ask(srv.path, b'{"cmd": "status"}\n' * 6, replies=6)
    assert all(r["ok"] for r in replies)
    assert srv.stats.rate_limited >= 4  # the burst of 2 at once, then one per 0.1 s
    assert loop.time() - started >= 0.35
