"""Operator commands over real MQTT: a tiny device stand-in answers (or stays silent)."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from tests.integration.dashboard.conftest import Dashboard, device_ids, fleet_has
from tests.support.dashboard import iso_now
from tests.support.mosquitto import wait_until

HEADERS = {"X-Requested-With": "edge-recorder"}


class Responder:
    """Answers `<prefix>/<device>/cmd/+` like the daemon does (schema-valid response)."""

    def __init__(self, dash: Dashboard, device_id: str, *, ok: bool = True) -> None:
        self.device_id, self.ok = device_id, ok
        self.requests: list[dict[str, Any]] = []
        self.acked: set[int] = set()  # message ids of the subscriptions the broker confirmed
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"r-{uuid.uuid4().hex}")
        self.client.on_connect = lambda c, *_a: c.subscribe(f"edge-recorder/{device_id}/cmd/+", 1)
        self.client.on_subscribe = lambda _c, _u, mid, *_a: self.acked.add(mid)
        self.client.on_message = self._on_message
        self.client.connect(dash.broker.host, dash.broker.port)
        self.client.loop_start()
        wait_until(lambda: bool(self.acked), 10, "responder subscribed")

    def subscribe(self, topic: str) -> None:
        """Subscribe and wait for the broker's confirmation of this very subscription."""
        _, mid = self.client.subscribe(topic, 1)
        wait_until(lambda: mid in self.acked, 10, f"subscribed to {topic}")

    def _on_message(self, client: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        name = msg.topic.rsplit("/", 1)[1]
        if name == "response":
            return
        request = json.loads(msg.payload)
        self.requests.append({"topic": msg.topic, "retain": msg.retain, **request})
        error = None if self.ok else {"code": "busy", "message": "busy", "reason": None}
        reply = {
            "v": 1, "device_id": self.device_id, "request_id": request["request_id"],
            "command": name, "ok": self.ok, "state": "idle", "error": error, "result": {},
            "at": iso_now(),
        }  # fmt: skip
        client.publish(f"edge-recorder/{self.device_id}/cmd/response", json.dumps(reply), qos=1)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def audit_lines(dash: Dashboard) -> list[dict[str, Any]]:
    path = Path(dash.cfg.audit_log)
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def mode_of(path: Path) -> int:
    return path.stat().st_mode & 0o777


@pytest.fixture
def responder_for(dashboard: Dashboard) -> Any:
    made: list[Responder] = []

    def make(device_id: str, ok: bool = True) -> Responder:
        made.append(Responder(dashboard, device_id, ok=ok))
        return made[-1]

    yield make
    for responder in made:
        responder.close()


async def _known(dash: Dashboard, *devices: str) -> None:
    for device in devices:
        dash.publisher.device(device)
    async with dash.session() as session:
        await fleet_has(session, lambda p: set(devices) <= set(device_ids(p)))


async def test_identify_round_trip(dashboard: Dashboard, responder_for: Any) -> None:
    await _known(dashboard, "exam-7")
    device = responder_for("exam-7")
    async with (
        dashboard.session() as session,
        session.post("/api/devices/exam-7/commands/identify", json={}, headers=HEADERS) as reply,
    ):
        assert reply.status == 200
        body = await reply.json()
    assert body["ok"] is True and body["error"] is None
    assert body["request_id"].startswith("dash-")
    assert body["response"]["request_id"] == body["request_id"]
    assert device.requests == [
        {
            "topic": "edge-recorder/exam-7/cmd/identify",
            "retain": False,
            "request_id": body["request_id"],
        }
    ]
    [line] = audit_lines(dashboard)
    assert line["outcome"] == "ok" and line["command"] == "identify"
    assert line["device_id"] == "exam-7" and line["request_id"] == body["request_id"]
    assert line["user"] == "local" and line["remote"] == "127.0.0.1"
    assert mode_of(dashboard.cfg.audit_log) == 0o600


async def test_refusal_is_reported_with_its_code(dashboard: Dashboard, responder_for: Any) -> None:
    await _known(dashboard, "exam-8")
    responder_for("exam-8", ok=False)
    async with (
        dashboard.session() as session,
        session.post("/api/devices/exam-8/commands/spool_retry", json={}, headers=HEADERS) as reply,
    ):
        assert reply.status == 200
        body = await reply.json()
    assert body["ok"] is False and body["error"] == "busy"
    assert audit_lines(dashboard)[-1]["outcome"] == "refused"


async def test_no_answer_is_a_504_timeout(dashboard: Dashboard) -> None:
    await _known(dashboard, "silent")
    async with (
        dashboard.session() as session,
        session.post("/api/devices/silent/commands/identify", json={}, headers=HEADERS) as reply,
    ):
        assert reply.status == 504
        body = await reply.json()
    assert body["error"] == "timeout" and body["ok"] is False
    line = audit_lines(dashboard)[-1]
    assert line["outcome"] == "timeout" and line["request_id"] == body["request_id"]


async def test_an_answer_from_another_device_does_not_count(
    dashboard: Dashboard, responder_for: Any
) -> None:
    await _known(dashboard, "target", "impostor")
    impostor = responder_for("impostor")
    # The impostor answers requests sent to "target" under its own device id. (Waiting on
    # its first subscription's flag instead raced the dashboard's request under load.)
    impostor.subscribe("edge-recorder/target/cmd/+")
    async with (
        dashboard.session() as session,
        session.post("/api/devices/target/commands/identify", json={}, headers=HEADERS) as reply,
    ):
        assert reply.status == 504
    # it did get the request (its paho thread may record it after the 504 under load); the
    # dashboard ignored whatever it answered
    wait_until(lambda: bool(impostor.requests), 10, "the impostor got the request")


async def test_unknown_command_or_device_is_404(dashboard: Dashboard) -> None:
    await _known(dashboard, "exam-9")
    async with dashboard.session() as session:
        for path in ("/api/devices/exam-9/commands/start", "/api/devices/ghost/commands/identify"):
            async with session.post(path, json={}, headers=HEADERS) as reply:
                assert reply.status == 404, path
    assert [line["outcome"] for line in audit_lines(dashboard)] == ["error", "error"]
