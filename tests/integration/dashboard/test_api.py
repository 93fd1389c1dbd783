"""The JSON API and the live stream against real MQTT traffic."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp

from tests.integration.dashboard.conftest import (
    Dashboard,
    device_detail,
    device_ids,
    eventually,
    fleet_has,
    get_json,
)
from tests.support.dashboard import SUMMARY_KEYS, availability, event, status


async def test_fleet_is_sorted_problems_first(dashboard: Dashboard) -> None:
    pub = dashboard.publisher
    pub.device("ok-idle")
    pub.device(
        "ok-recording",
        state="recording",
        encounter_ref="3f9a0c1b2d4e",
        recording_seq=1,
        encounter_elapsed_s=10.0,
    )
    pub.device(
        "broken",
        state="error",
        error={"code": "capture_failed", "message": "mic gone", "at": status("x")["at"]},
    )
    pub.send("gone", "status", status("gone"), retain=True)
    pub.send("gone", "availability", availability("offline", reason="lost"), retain=True)
    async with dashboard.session() as session:
        payload = await fleet_has(
            session, lambda p: p["counts"]["total"] == 4 and p["counts"]["offline"] == 1
        )
    assert device_ids(payload) == ["gone", "broken", "ok-recording", "ok-idle"]
    ranks = [row["rank"] for row in payload["devices"]]
    assert ranks == sorted(ranks) and ranks[0] == 0
    assert payload["counts"]["offline"] == 1 and payload["counts"]["online"] == 3
    assert payload["counts"]["recording"] == 1 and payload["counts"]["idle"] == 1
    assert payload["broker"]["connected"] is True
    assert payload["broker"]["url"] == f"mqtt://127.0.0.1:{dashboard.broker.port}"
    assert payload["user"] == {"name": "local", "role": "operator", "mode": "open"}
    assert all(set(row) == SUMMARY_KEYS for row in payload["devices"])
    assert [p["code"] for p in payload["devices"][0]["problems"]] == ["offline"]


async def test_device_detail_has_status_and_events_newest_first(dashboard: Dashboard) -> None:
    pub = dashboard.publisher
    pub.device("exam-1", backlog={"recordings": 2, "bytes": 1234, "oldest_age_s": 5.0})
    pub.send("exam-1", "events", event("exam-1", 1, type="encounter_started"))
    pub.send("exam-1", "events", event("exam-1", 2, type="encounter_delivered"))
    async with dashboard.session() as session:

        async def detail() -> Any:
            body = await device_detail(session, "exam-1")
            return body if body and len(body["events"]) == 2 and body["status"] else None

        body = await eventually(detail, what="two events")
        async with session.get("/api/devices/nobody") as missing:
            assert missing.status == 404
            assert await missing.json() == {"error": "unknown device"}
    assert [e["seq"] for e in body["events"]] == [2, 1]
    assert body["status"]["backlog"]["bytes"] == 1234
    assert body["summary"]["backlog_bytes"] == 1234
    assert body["births"][0]["verdict"] == "accepted"
    assert body["user"]["role"] == "operator"


async def test_history_endpoint_serves_flushed_samples(dashboard: Dashboard) -> None:
    dashboard.publisher.device("chart-1", backlog={"bytes": 777}, system={"cpu_temp_c": 61.5})
    async with dashboard.session() as session:

        async def series() -> Any:
            body = await get_json(session, "/api/devices/chart-1/history?hours=2")
            return body if body["series"]["t"] else None

        body = await eventually(series, what="a flushed history sample")
        for bad in ("0", "169", "soon"):
            async with session.get(f"/api/devices/chart-1/history?hours={bad}") as reply:
                assert reply.status == 400
    assert body["device_id"] == "chart-1"
    assert body["until"] - body["since"] == 2 * 3600
    assert body["series"]["backlog_bytes"] == [777]
    assert body["series"]["cpu_temp_c"] == [61.5]


async def _next_event(lines: aiohttp.StreamReader) -> tuple[str, dict[str, Any]]:
    name, data = "", ""
    while True:
        raw = await lines.readline()
        assert raw, "stream ended"
        line = raw.decode().rstrip("\n")
        if line.startswith("event: "):
            name = line[7:]
        elif line.startswith("data: "):
            data = line[6:]
        elif line == "" and name:
            return name, json.loads(data)


async def test_stream_sends_snapshot_then_update_after_publish(dashboard: Dashboard) -> None:
    dashboard.publisher.device("first")
    async with dashboard.session() as session:
        await fleet_has(session, lambda p: "first" in device_ids(p))
        async with session.get("/api/stream") as stream:
            assert stream.headers["Content-Type"].startswith("text/event-stream")
            async with asyncio.timeout(10):
                name, snapshot = await _next_event(stream.content)
                assert name == "snapshot"
                assert device_ids(snapshot) == ["first"]
                dashboard.publisher.device(
                    "second",
                    state="recording",
                    encounter_ref="3f9a0c1b2d4e",
                    recording_seq=1,
                    encounter_elapsed_s=1.0,
                )
                while True:
                    name, update = await _next_event(stream.content)
                    assert name == "update"
                    if "second" in device_ids(update):
                        break
    assert update["removed"] == []
    assert update["counts"]["total"] == 2
    row = next(r for r in update["devices"] if r["device_id"] == "second")
    assert row["state"] == "recording"


async def test_health_and_security_headers(dashboard: Dashboard) -> None:
    async with dashboard.session() as session:
        async with session.get("/healthz") as reply:
            assert reply.status == 200 and await reply.text() == "ok"
        for path in ("/", "/api/fleet", "/api/devices/none", "/static/app.css"):
            async with session.get(path) as reply:
                assert reply.headers["X-Frame-Options"] == "DENY", path
                assert reply.headers["X-Content-Type-Options"] == "nosniff"
                assert reply.headers["Referrer-Policy"] == "no-referrer"
                assert "script-src" not in reply.headers["Content-Security-Policy"]
                assert reply.headers["Content-Security-Policy"].startswith("default-src 'self'")
        async with session.post(
            "/api/devices/x/commands/identify",
            data=b"x" * 20000,
            headers={"X-Requested-With": "edge-recorder"},
        ) as reply:
            assert reply.status == 413


async def test_healthz_reports_a_lost_broker(dashboard: Dashboard) -> None:
    dashboard.broker.stop()
    async with dashboard.session() as session:

        async def down() -> bool:
            async with session.get("/healthz") as reply:
                return reply.status == 503

        await eventually(down, what="healthz 503")
        payload = await get_json(session, "/api/fleet")
    assert payload["broker"]["connected"] is False
