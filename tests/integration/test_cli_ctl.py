"""`edge-recorder ctl` as a real process against a real control server started in the test."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from edge_recorder.config.model import ControlConfig
from edge_recorder.control import server as control
from edge_recorder.control.server import ControlServer
from tests.conftest import ROOT
from tests.integration.test_control_socket import SECRET_MRN, FakeHandler
from tests.support.helpers import async_poll_until


@dataclass
class Done:
    returncode: int
    stdout: str
    stderr: str


async def ctl(*args: str, stdin: str | None = None, **extra_env: str) -> Done:
    """Run `edge-recorder ctl ARGS` without blocking the loop that serves the socket."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("EDGE_RECORDER")}
    env["PYTHONPATH"] = str(ROOT)
    env.update(extra_env)
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "edge_recorder",
        "ctl",
        *args,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    out, err = await asyncio.wait_for(proc.communicate(stdin.encode() if stdin else None), 60)
    assert proc.returncode is not None
    return Done(proc.returncode, out.decode(), err.decode())


@pytest.fixture
async def daemon(tmp_path: Path) -> AsyncIterator[tuple[Path, FakeHandler]]:
    config = ControlConfig(socket=tmp_path / "ctl.sock")
    handler = FakeHandler()
    server = ControlServer(handler, config)
    await server.start()
    yield config.socket, handler
    handler.released.set()
    await server.close()


async def test_status_prints_the_device_status(daemon: tuple[Path, FakeHandler]) -> None:
    path, _ = daemon
    done = await ctl("status", "--socket", str(path))
    assert done.returncode == 0, done.stderr
    status = json.loads(done.stdout)
    assert status["state"] == "recording" and status["correlation_id"] == "c-1"
    assert status["backlog"] == {
        "recordings": 3,
        "bytes": 4096,
        "oldest_age_s": None,
        "quarantined": 0,
    }
    assert status["mic"]["present"] is True and status["mic"]["device"] == "fakemic"


async def test_socket_comes_from_the_config_file(
    daemon: tuple[Path, FakeHandler], tmp_path: Path
) -> None:
    path, handler = daemon
    config = tmp_path / "config.toml"
    config.write_text(f'[control]\nsocket = "{path}"\n')
    done = await ctl("identify", "--config", str(config))
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["ok"] is True
    assert [r.name for r in handler.requests] == ["identify"]


async def test_start_with_context_from_a_file_and_from_stdin(
    daemon: tuple[Path, FakeHandler], tmp_path: Path
) -> None:
    path, handler = daemon
    context = {"correlation_id": "enc-1", "external_user_id": "dr-a", "data": {"mrn": SECRET_MRN}}
    file = tmp_path / "ctx.json"
    file.write_text(json.dumps(context))
    by_file, by_stdin = await asyncio.gather(
        ctl("start", "--socket", str(path), "--context-json", str(file)),
        ctl("start", "--socket", str(path), "--context-json", "-", stdin=json.dumps(context)),
    )
    for done in (by_file, by_stdin):
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["data"] == {"correlation_id": "c-1"}
    assert [r.context.correlation_id for r in handler.requests if r.context] == ["enc-1"] * 2
    assert [r.context.data for r in handler.requests if r.context] == [{"mrn": SECRET_MRN}] * 2


async def test_refused_command_exits_1_with_the_reason(daemon: tuple[Path, FakeHandler]) -> None:
    path, handler = daemon
    handler.mode = "refuse"
    done = await ctl("stop", "--socket", str(path))
    assert done.returncode == 1
    assert json.loads(done.stdout)["code"] == "no_encounter"
    assert "stop refused: no encounter in progress" in done.stderr


async def test_bad_context_exits_65_without_echoing_it(
    daemon: tuple[Path, FakeHandler], tmp_path: Path
) -> None:
    path, handler = daemon
    invalid, broken = tmp_path / "invalid.json", tmp_path / "broken.json"
    invalid.write_text(json.dumps({"correlation_id": f"{SECRET_MRN} spaces"}))
    broken.write_text(f'{{"mrn": "{SECRET_MRN}", oops')
    done, unparsable, misplaced = await asyncio.gather(
        ctl("start", "--socket", str(path), "--context-json", str(invalid)),
        ctl("start", "--socket", str(path), "--context-json", str(broken)),
        ctl("stop", "--socket", str(path), "--context-json", str(invalid)),
    )
    assert done.returncode == 65
    assert "correlation_id: String should match pattern" in done.stderr
    assert unparsable.returncode == 65 and "not valid JSON" in unparsable.stderr
    for run in (done, unparsable):
        assert SECRET_MRN not in run.stderr + run.stdout
    assert misplaced.returncode == 2 and "only goes with 'start'" in misplaced.stderr
    assert handler.requests == []


async def test_daemon_not_running_exits_69(tmp_path: Path) -> None:
    stale = tmp_path / "stale.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(str(stale))
    sock.close()  # a socket file nobody listens on (daemon crashed)
    missing, refused = await asyncio.gather(
        ctl("status", "--socket", str(tmp_path / "none.sock")),
        ctl("status", "--socket", str(stale)),
    )
    assert missing.returncode == 69
    assert "the daemon is not running" in missing.stderr and missing.stdout == ""
    assert refused.returncode == 69 and "not running" in refused.stderr


async def test_daemon_not_answering_exits_69(daemon: tuple[Path, FakeHandler]) -> None:
    path, handler = daemon
    handler.mode = "hang"
    done = await ctl("pause", "--socket", str(path), "--timeout", "0.5")
    assert done.returncode == 69 and "did not answer within 0.5 s" in done.stderr


async def test_environment_overrides_name_the_socket(
    daemon: tuple[Path, FakeHandler],
) -> None:
    path, _ = daemon  # no --socket, no --config: defaults (or /etc's file) plus environment
    done = await ctl("status", EDGE_RECORDER__CONTROL__SOCKET=str(path))
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["state"] == "recording"


async def test_broken_config_exits_78(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text("[control]\nsocket_mode = 'rw'\n")
    done = await ctl("status", "--config", str(config))
    assert done.returncode == 78 and "control.socket_mode" in done.stderr


async def test_reload_is_a_ctl_command_and_a_refusal_says_why(
    daemon: tuple[Path, FakeHandler],
) -> None:
    path, handler = daemon
    done = await ctl("reload", "--socket", str(path))
    assert done.returncode == 0, done.stderr
    handler.mode = "refuse"
    refused = await ctl("reload", "--socket", str(path))
    assert refused.returncode == 1 and "reload refused: no encounter in progress" in refused.stderr
    assert [r.name for r in handler.requests] == ["reload", "reload"]


# ------------------------------------------------ many clients: served, or told "busy", never
#                                                  "not running" while the daemon runs


@pytest.fixture
async def crowded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[ControlServer, asyncio.StreamWriter]]:
    """A real control server with one slot, no one-shot places, and that slot held."""
    monkeypatch.setattr(control, "MAX_CLIENTS", 1)
    monkeypatch.setattr(control, "OVERFLOW_CLIENTS", 0)
    monkeypatch.setattr(control, "EVICT_IDLE_AFTER_S", 3600.0)
    server = ControlServer(FakeHandler(), ControlConfig(socket=tmp_path / "ctl.sock"))
    await server.start()
    reader, writer = await asyncio.open_unix_connection(str(server.path))
    writer.write(b'{"cmd": "status"}\n')
    assert json.loads(await asyncio.wait_for(reader.readline(), 5))["ok"]
    yield server, writer
    writer.close()
    await server.close()


async def test_a_busy_daemon_is_retried_until_it_has_room(
    crowded: tuple[ControlServer, asyncio.StreamWriter],
) -> None:
    server, holder = crowded
    run = asyncio.create_task(ctl("identify", "--socket", str(server.path)))
    await async_poll_until(lambda: server.stats.busy >= 1, timeout=30, what="ctl told busy")
    holder.close()  # the slot frees up while ctl is retrying
    done = await run
    assert done.returncode == 0, done.stderr  # before: 1, "identify refused: too many..."
    assert json.loads(done.stdout)["ok"] is True


async def test_a_daemon_that_stays_busy_exits_75_busy_not_69(
    crowded: tuple[ControlServer, asyncio.StreamWriter],
) -> None:
    server, _ = crowded
    loop = asyncio.get_running_loop()
    started = loop.time()
    done = await ctl("status", "--socket", str(server.path))
    assert done.returncode == 75, done.stderr
    assert "the daemon is running but busy" in done.stderr and "try again" in done.stderr
    assert server.stats.busy >= 2  # it did retry
    assert loop.time() - started < 30  # bounded (3 s of retries plus interpreter start-up)


async def test_a_full_listen_queue_is_busy_not_unreachable(tmp_path: Path) -> None:
    """A connection storm fills the daemon's listen queue: connect() fails with EAGAIN."""
    path = tmp_path / "full.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    listener.listen(0)  # never accepts: like a daemon buried under connections
    queued = []
    while True:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.setblocking(False)
        try:
            sock.connect(str(path))
        except BlockingIOError:
            sock.close()
            break
        queued.append(sock)
    try:
        done = await ctl("status", "--socket", str(path), "--timeout", "1")
    finally:
        for sock in queued:
            sock.close()
        listener.close()
    assert done.returncode == 75, done.stderr  # before: 69, "cannot reach the daemon"
    assert "busy (its control socket accepts no more connections)" in done.stderr


async def test_clients_polling_status_do_not_lock_ctl_out(
    daemon: tuple[Path, FakeHandler],
) -> None:
    path, handler = daemon
    stop = asyncio.Event()
    answered = [0] * control.MAX_CLIENTS

    async def poll(n: int) -> None:
        reader, writer = await asyncio.open_unix_connection(str(path))
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
        done = await ctl("identify", "--socket", str(path))
        assert done.returncode == 0, done.stderr  # before: 1, "too many control clients"
        assert min(answered) > 3  # the pollers were served all along
    finally:
        stop.set()
        await asyncio.gather(*pollers, return_exceptions=True)
    assert [r.name for r in handler.requests] == ["identify"]
