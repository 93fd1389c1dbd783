"""Who may see and do what: open mode, users file sessions, trusted proxy headers, CSRF."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp

from edge_recorder.dashboard.auth import write_user
from tests.integration.dashboard.conftest import Dashboard, DashboardFactory, fleet_has

HEADERS = {"X-Requested-With": "edge-recorder"}


def users_file(tmp_path: Path) -> Path:
    path = tmp_path / "users"
    write_user(path, "alice", "operator", "alice-secret-1")
    write_user(path, "bob", "viewer", "bob-secret-12")
    return path


def audit_lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(x) for x in path.read_text().splitlines()] if path.exists() else []


async def login(session: aiohttp.ClientSession, user: str, password: str, next_: str = "/") -> Any:
    form = {"username": user, "password": password, "next": next_}
    return await session.post("/login", data=form, allow_redirects=False)


async def test_open_mode_on_loopback_everyone_is_local_operator(dashboard: Dashboard) -> None:
    async with dashboard.session() as session:
        payload = await fleet_has(session, lambda p: True)
    assert payload["user"] == {"name": "local", "role": "operator", "mode": "open"}


async def test_users_mode_login_logout(dashboard_factory: DashboardFactory, tmp_path: Path) -> None:
    dash = dashboard_factory(auth={"users_file": str(users_file(tmp_path))})
    async with dash.session() as session:
        async with session.get("/api/fleet") as reply:
            assert reply.status == 401
            assert await reply.json() == {"error": "login required"}
        async with session.get("/devices/x?tab=1", allow_redirects=False) as reply:
            assert reply.status == 303
            location = urlsplit(reply.headers["Location"])
            assert location.path == "/login"
            assert parse_qs(location.query) == {"next": ["/devices/x?tab=1"]}
        async with session.get("/login") as reply:
            assert reply.status == 200  # the login page itself needs no login
        async with await login(session, "alice", "wrong-password") as reply:
            assert reply.status == 303 and reply.headers["Location"].startswith("/login?failed=1")
        async with await login(session, "alice", "alice-secret-1", "/devices/x") as reply:
            assert reply.status == 303 and reply.headers["Location"] == "/devices/x"
            cookie = reply.cookies["er_session"]
            assert cookie["httponly"] and cookie["samesite"] == "Strict"
            assert not cookie["secure"]  # plain HTTP on loopback here
        async with session.get("/api/fleet") as reply:
            assert reply.status == 200
            assert (await reply.json())["user"] == {
                "name": "alice",
                "role": "operator",
                "mode": "users",
            }
        async with session.post("/logout", allow_redirects=False) as reply:
            assert reply.status == 303
    replay = dash.session(cookies={"er_session": cookie.value})
    async with replay, replay.get("/api/fleet") as reply:
        assert reply.status == 401  # the old token is gone server-side


async def test_next_must_stay_on_the_site(
    dashboard_factory: DashboardFactory, tmp_path: Path
) -> None:
    dash = dashboard_factory(auth={"users_file": str(users_file(tmp_path))})
    async with dash.session() as session:
        for target in ("//evil.example/x", "https://evil.example/", "/\\evil.example"):
            async with await login(session, "alice", "alice-secret-1", target) as reply:
                assert reply.headers["Location"] == "/", target


async def test_five_failures_lock_the_name_for_a_minute(
    dashboard_factory: DashboardFactory, tmp_path: Path
) -> None:
    dash = dashboard_factory(auth={"users_file": str(users_file(tmp_path))})
    async with dash.session() as session:
        for _ in range(5):
            async with await login(session, "bob", "nope") as reply:
                assert reply.status == 303
        async with await login(session, "bob", "bob-secret-12") as reply:
            assert reply.status == 429
        async with await login(session, "alice", "alice-secret-1") as reply:
            assert reply.status == 303 and "er_session" in reply.cookies  # others unaffected


async def test_viewer_cannot_send_commands_and_it_is_audited(
    dashboard_factory: DashboardFactory, tmp_path: Path
) -> None:
    dash = dashboard_factory(auth={"users_file": str(users_file(tmp_path))})
    dash.publisher.device("exam-1")
    async with dash.session() as session:
        async with await login(session, "bob", "bob-secret-12"):
            pass
        await fleet_has(session, lambda p: p["counts"]["total"] == 1)
        async with session.post(
            "/api/devices/exam-1/commands/identify", json={}, headers=HEADERS
        ) as reply:
            assert reply.status == 403
    [line] = audit_lines(dash.cfg.audit_log)
    assert line["user"] == "bob" and line["role"] == "viewer"
    assert line["outcome"] == "forbidden" and line["device_id"] == "exam-1"
    assert set(line) == {
        "at",
        "user",
        "role",
        "remote",
        "device_id",
        "command",
        "request_id",
        "outcome",
    }


async def test_commands_need_the_csrf_header_and_same_origin(dashboard: Dashboard) -> None:
    dashboard.publisher.device("exam-2")
    async with dashboard.session() as session:
        await fleet_has(session, lambda p: p["counts"]["total"] == 1)
        path = "/api/devices/exam-2/commands/identify"
        async with session.post(path, json={}) as reply:
            assert reply.status == 403
        headers = {**HEADERS, "Origin": "https://evil.example"}
        async with session.post(path, json={}, headers=headers) as reply:
            assert reply.status == 403
    assert audit_lines(dashboard.cfg.audit_log) == []  # refused before any command


async def test_proxy_header_is_trusted_only_from_trusted_proxies(
    dashboard_factory: DashboardFactory,
) -> None:
    proxy = {"proxy_user_header": "X-Remote-User", "proxy_role_header": "X-Remote-Role"}
    trusted = dashboard_factory(auth={**proxy, "trusted_proxies": ["127.0.0.0/8"]})
    untrusted = dashboard_factory(auth={**proxy, "trusted_proxies": ["10.1.2.3"]})
    headers = {"X-Remote-User": "carol", "X-Remote-Role": "operator"}
    async with trusted.session(headers=headers) as session, session.get("/api/fleet") as reply:
        assert reply.status == 200
        assert (await reply.json())["user"] == {
            "name": "carol",
            "role": "operator",
            "mode": "proxy",
        }
    dave = trusted.session(headers={"X-Remote-User": "dave"})
    async with dave, dave.get("/api/fleet") as reply:
        assert (await reply.json())["user"] == {"name": "dave", "role": "viewer", "mode": "proxy"}
    outsider = untrusted.session(headers=headers)
    async with outsider, outsider.get("/api/fleet") as reply:
        assert reply.status == 401
