"""`edge-recorder fleet serve` and `fleet passwd` as a person runs them (subprocesses)."""

from __future__ import annotations

import asyncio
import json
import os
import select
import signal
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from edge_recorder.dashboard.history import History
from tests.integration.dashboard.conftest import Publisher, device_ids, eventually
from tests.support.dashboard import status
from tests.support.mosquitto import Mosquitto, free_port
from tests.support.pki import make_pki

CLI = [sys.executable, "-m", "edge_recorder", "fleet"]


def run_cli(
    *args: str, stdin: str = "", env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *args], input=stdin, capture_output=True, text=True, timeout=60, env=env, check=False
    )


def read_line(process: subprocess.Popen[str], prefix: str, timeout: float = 20) -> str:
    """The first stdout line starting with `prefix`, waiting with a deadline."""
    assert process.stdout is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([process.stdout], [], [], 0.2)
        if ready:
            line = process.stdout.readline()
            if not line:
                break
            if line.startswith(prefix):
                return line.strip()
    process.kill()
    raise AssertionError(
        f"no {prefix!r} line; stderr: {process.stderr.read() if process.stderr else ''}"
    )


@pytest.fixture
def procs() -> Iterator[list[subprocess.Popen[str]]]:
    started: list[subprocess.Popen[str]] = []
    yield started
    for process in started:
        if process.poll() is None:
            process.kill()
            process.wait(10)


def test_refuses_to_listen_beyond_loopback_without_tls_and_login(tmp_path: Path) -> None:
    config = tmp_path / "fleet.toml"
    config.write_text('[http]\nhost = "0.0.0.0"\n')
    done = run_cli("serve", "--config", str(config), "--listen", f"0.0.0.0:{free_port()}")
    assert done.returncode == 78
    assert "refusing to start" in done.stderr
    for missing in ("http.tls_cert_file", "http.tls_key_file", "auth.users_file"):
        assert missing in done.stderr


def test_passwd_writes_an_argon2_line(tmp_path: Path) -> None:
    users = tmp_path / "etc" / "users"
    done = run_cli("passwd", str(users), "alice", "--role", "operator", stdin="correct horse\n")
    assert done.returncode == 0, done.stderr
    [line] = users.read_text().splitlines()
    assert line.startswith("alice:operator:$argon2id$")
    assert "correct horse" not in users.read_text()
    assert users.stat().st_mode & 0o777 == 0o600
    again = run_cli("passwd", str(users), "alice", stdin="another password\n")
    assert again.returncode == 0
    assert users.read_text().splitlines()[0].startswith("alice:viewer:$argon2id$")
    assert run_cli("passwd", str(users), "bob", stdin="short\n").returncode == 1


async def _login_and_wait_for(port: int, ca: ssl.SSLContext, device_id: str) -> dict[str, Any]:
    """Log in over HTTPS and return /api/fleet once it lists `device_id`."""
    connector = aiohttp.TCPConnector(ssl=ca)
    jar = aiohttp.CookieJar(unsafe=True)
    async with aiohttp.ClientSession(
        f"https://127.0.0.1:{port}", connector=connector, cookie_jar=jar
    ) as session:
        async with session.get("/api/fleet") as reply:
            assert reply.status == 401
        form = {"username": "alice", "password": "alice-secret-1", "next": "/"}
        async with session.post("/login", data=form, allow_redirects=False) as reply:
            assert reply.status == 303
            assert reply.cookies["er_session"]["secure"]  # HTTPS: a Secure cookie

        async def listed() -> Any:
            async with session.get("/api/fleet") as reply:
                body = await reply.json()
            return body if device_id in device_ids(body) else None

        found: dict[str, Any] = await eventually(listed, 15, "the device listed")
        return found


def test_serves_https_with_login_and_flushes_history_on_sigterm(
    tmp_path: Path, mosquitto_broker: Mosquitto, procs: list[subprocess.Popen[str]]
) -> None:
    pki = make_pki(tmp_path / "pki")
    users = tmp_path / "users"
    made = run_cli("passwd", str(users), "alice", "--role", "operator", stdin="alice-secret-1\n")
    assert made.returncode == 0
    history = tmp_path / "history.sqlite3"
    port = free_port()
    config = tmp_path / "fleet.toml"
    config.write_text(
        f'audit_log = "{tmp_path / "audit.log"}"\n'
        f'[http]\nhost = "0.0.0.0"\nport = {port}\n'
        f'tls_cert_file = "{pki.server_cert}"\ntls_key_file = "{pki.server_key}"\n'
        f'[auth]\nusers_file = "{users}"\n'
        # flush_s far away: only the flush at SIGTERM can write the sample
        f'[history]\npath = "{history}"\nflush_s = 3600\nsample_s = 1\n'
    )
    process = subprocess.Popen(
        [*CLI, "serve", "--config", str(config),
         "--broker", f"127.0.0.1:{mosquitto_broker.port}"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    procs.append(process)
    assert read_line(process, "dashboard: ") == f"dashboard: https://0.0.0.0:{port}/"
    ca = ssl.create_default_context(cafile=str(pki.ca_file))
    publisher = Publisher(mosquitto_broker.host, mosquitto_broker.port)
    try:
        publisher.send("exam-1", "status", status("exam-1", backlog={"bytes": 99}), retain=True)
        body = asyncio.run(_login_and_wait_for(port, ca, "exam-1"))
    finally:
        publisher.close()
    assert body["user"] == {"name": "alice", "role": "operator", "mode": "users"}
    process.send_signal(signal.SIGTERM)
    assert process.wait(20) == 0
    stored = History(history, retention_s=86400, sample_s=1)
    stored.open()
    try:
        series = stored.series("exam-1", 0, time.time() + 60)
    finally:
        stored.close()
    assert series["backlog_bytes"] == [99]


def test_demo_serves_a_simulated_fleet(procs: list[subprocess.Popen[str]]) -> None:
    port = free_port()
    env = {**os.environ, "EDGE_RECORDER_CONFIG": "/nonexistent"}
    process = subprocess.Popen(
        [*CLI, "serve", "--demo", "12", "--listen", f"127.0.0.1:{port}"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    procs.append(process)
    assert read_line(process, "dashboard: ") == f"dashboard: http://127.0.0.1:{port}/"
    import urllib.request

    deadline = time.monotonic() + 15
    while True:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/fleet", timeout=5) as reply:
            fleet = json.load(reply)
        if fleet["counts"]["total"] == 12:
            break
        assert time.monotonic() < deadline, fleet["counts"]
        time.sleep(0.05)  # polling with a deadline
    device = fleet["devices"][-1]["device_id"]
    url = f"http://127.0.0.1:{port}/api/devices/{device}/history?hours=24"
    with urllib.request.urlopen(url, timeout=5) as reply:
        assert len(json.load(reply)["series"]["t"]) > 100  # backfilled
    process.send_signal(signal.SIGINT)
    assert process.wait(20) == 0
