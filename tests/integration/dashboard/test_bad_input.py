"""Broken, oversized, forged and flooding devices: counted per device, the service carries on."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from tests.integration.dashboard.conftest import (
    Dashboard,
    DashboardFactory,
    device_detail,
    device_ids,
    eventually,
    fleet_has,
    get_json,
)
from tests.support.dashboard import status

LIMITS = {"max_payload_bytes": 4096, "device_rate_per_s": 5.0, "device_burst": 10}


@pytest.fixture
def dash(dashboard_factory: DashboardFactory) -> Dashboard:
    """A dashboard with small limits: 4 kB payloads, per device 10 at once then 5 a second."""
    return dashboard_factory(limits=LIMITS)


async def test_bad_messages_are_counted_per_device_and_kind(dash: Dashboard) -> None:
    pub = dash.publisher
    pub.device("victim")
    pub.raw("edge-recorder/victim/status", b"\xff\xfe not json")
    pub.raw("edge-recorder/victim/status", b"{" + b" " * 5000 + b"}")
    pub.raw("edge-recorder/victim/status", json.dumps({"v": 1, "device_id": "victim"}))
    pub.send("victim", "status", status("someone-else"))
    pub.raw("edge-recorder/victim/events", b"[1, 2")
    pub.raw("edge-recorder/bad$id/status", json.dumps(status("x")))
    async with dash.session() as session:

        async def counted() -> Any:
            # the six messages may be taken in any batch order: wait for all of them
            body = await device_detail(session, "victim")
            fleet = await get_json(session, "/api/fleet")
            done = body and sum(body["bad_input"].values()) == 5
            return (body, fleet) if done and sum(fleet["unattributed"].values()) else None

        body, fleet = await eventually(counted, what="six bad messages counted")
    assert body["bad_input"] == {
        "too_large": 1, "not_json": 2, "schema": 1, "wrong_device": 1, "flood": 0,
    }  # fmt: skip
    assert body["bad_input_last"]["kind"] == "not_json"
    # The good status before them still stands; nothing from the broken ones replaced it.
    assert body["status"]["device_id"] == "victim"
    row = next(r for r in fleet["devices"] if r["device_id"] == "victim")
    assert row["bad_input_total"] == 5
    assert "bad_input" in [p["code"] for p in row["problems"]]
    assert fleet["unattributed"]["wrong_device"] == 1
    assert "someone-else" not in device_ids(fleet)


async def test_a_flooding_device_is_throttled_and_others_still_arrive(dash: Dashboard) -> None:
    pub = dash.publisher
    pub.device("calm")
    async with dash.session() as session:
        await fleet_has(session, lambda p: "calm" in device_ids(p))
        sent = 300
        started = time.monotonic()
        for _ in range(sent):
            pub.client.publish("edge-recorder/noisy/status", json.dumps(status("noisy")), qos=0)
        pub.raw("edge-recorder/noisy/status", json.dumps(status("noisy")))  # acked: all sent
        elapsed = time.monotonic() - started

        # burst 10 + 5/s: at most this many of the 301 got through to be parsed.
        allowed = LIMITS["device_burst"] + LIMITS["device_rate_per_s"] * (elapsed + 1)

        async def flood_counted() -> Any:
            body = await device_detail(session, "noisy")
            return body if body and body["bad_input"]["flood"] >= sent + 1 - allowed else None

        body = await eventually(flood_counted, what="the flood counted")
        assert body["bad_input"]["flood"] <= sent + 1
        pub.device(
            "calm",
            state="recording",
            encounter_ref="3f9a0c1b2d4e",
            recording_seq=1,
            encounter_elapsed_s=2.0,
        )
        fleet = await fleet_has(
            session,
            lambda p: any(
                r["device_id"] == "calm" and r["state"] == "recording" for r in p["devices"]
            ),
        )
        async with session.get("/healthz") as reply:
            assert reply.status == 200
    calm = next(r for r in fleet["devices"] if r["device_id"] == "calm")
    assert calm["bad_input_total"] == 0
