"""TLS, authentication, protocol fallback and the bounded queue, against a real mosquitto."""

from __future__ import annotations

import asyncio
import contextlib
import json
from pathlib import Path

from devtools.faultproxy import FaultProxy
from edge_recorder.fleet.reporter import MAX_INFLIGHT
from tests.integration.fleet.conftest import DEVICE, PREFIX
from tests.support.helpers import async_poll_until
from tests.support.mosquitto import make_tls_files

BASE = f"{PREFIX}/{DEVICE}"


def topic_is(topic: str):
    return lambda m: m.topic == topic and bool(m.payload)


async def test_tls_with_client_certificate_and_password(
    mosquitto_factory, make_config, collect, start_reporter, tmp_path: Path
) -> None:
    tls = make_tls_files(tmp_path / "tls")
    broker = mosquitto_factory(tls=tls, require_certificate=True, users={"device": "s3cret"})
    password_file = tmp_path / "mqtt-password"
    password_file.write_text("s3cret\n")
    config = make_config(
        broker,
        tls=True,
        ca_file=str(tls.ca_cert),
        client_cert_file=str(tls.client_cert),
        client_key_file=str(tls.client_key),
        username="device",
        password_file=str(password_file),
    )
    watcher = collect(
        broker,
        tls_ca=tls.ca_cert,
        tls_cert=tls.client_cert,
        tls_key=tls.client_key,
        username="device",
        password="s3cret",
    )
    reporter, _ = await start_reporter(config)
    online = await watcher.await_for(topic_is(f"{BASE}/availability"))
    assert online.json()["state"] == "online"
    await watcher.await_for(topic_is(f"{BASE}/status"))
    watcher.publish(f"{BASE}/cmd/ping", json.dumps({"request_id": "tls-ping"}))
    answer = await watcher.await_for(topic_is(f"{BASE}/cmd/response"))
    assert answer.json()["ok"] and answer.json()["request_id"] == "tls-ping"
    assert reporter.stats().connected


async def test_untrusted_broker_certificate_never_connects(
    mosquitto_factory, make_config, start_reporter, tmp_path: Path
) -> None:
    tls = make_tls_files(tmp_path / "tls")
    broker = mosquitto_factory(tls=tls)
    config = make_config(broker, tls=True, ca_file=str(tls.other_ca_cert))
    reporter, _ = await start_reporter(config)
    await async_poll_until(lambda: reporter.stats().last_connect_error is not None, 10, "error")
    stats = reporter.stats()
    assert not stats.connected and stats.connects == 0
    assert "CERTIFICATE_VERIFY_FAILED" in str(stats.last_connect_error)


async def test_wrong_password_is_refused_not_fatal(
    mosquitto_factory, make_config, start_reporter, tmp_path: Path
) -> None:
    broker = mosquitto_factory(users={"device": "right"})
    password_file = tmp_path / "pw"
    password_file.write_text("wrong")
    config = make_config(broker, username="device", password_file=str(password_file))
    reporter, _ = await start_reporter(config)
    await async_poll_until(lambda: reporter.stats().last_connect_error is not None, 10, "refusal")
    assert "Not authorized" in str(reporter.stats().last_connect_error)
    assert reporter.stats().connects == 0
    reporter.event("alarm", code="still_alive")  # the API keeps working while refused
    assert reporter.stats().events_queued == 1


class OldBroker:
    """A front that speaks like a pre-MQTT-5 broker: a v5 CONNECT gets the 3.1.1 CONNACK
    'unacceptable protocol version'; anything else is passed through to mosquitto."""

    def __init__(self, port: int) -> None:
        self.target_port = port
        self.levels: list[int] = []
        self.server: asyncio.Server | None = None
        self.tasks: set[asyncio.Task[None]] = set()
        self.writers: list[asyncio.StreamWriter] = []

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        return int(self.server.sockets[0].getsockname()[1])

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        first = await reader.readexactly(1)
        raw, length, shift = b"", 0, 0
        while True:
            byte = await reader.readexactly(1)
            raw += byte
            length |= (byte[0] & 0x7F) << shift
            shift += 7
            if byte[0] < 0x80:
                break
        body = await reader.readexactly(length)
        level = body[2 + int.from_bytes(body[:2], "big")]
        self.levels.append(level)
        if level == 5:
            writer.write(b"\x20\x02\x00\x01")
            await writer.drain()
            writer.close()
            return
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        up_writer.write(first + raw + body)
        self.writers += [writer, up_writer]
        for src, dst in ((reader, up_writer), (up_reader, writer)):
            task = asyncio.create_task(self._pump(src, dst))
            self.tasks.add(task)

    @staticmethod
    async def _pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, OSError):
            while data := await src.read(65536):
                dst.write(data)
                await dst.drain()
        dst.close()

    async def stop(self) -> None:
        for task in self.tasks:
            task.cancel()
        for writer in self.writers:
            writer.close()
        if self.server:
            self.server.close()


async def test_falls_back_to_mqtt_311(
    mosquitto_broker, make_config, collect, start_reporter
) -> None:
    old = OldBroker(mosquitto_broker.port)
    port = await old.start()
    try:
        watcher = collect(mosquitto_broker)
        config = make_config(mosquitto_broker, port=port)
        reporter, _ = await start_reporter(config)
        online = await watcher.await_for(topic_is(f"{BASE}/availability"), timeout=15)
        assert online.json()["state"] == "online"
        status = await watcher.await_for(topic_is(f"{BASE}/status"))
        assert status.json()["mqtt"]["protocol"] == "3.1.1"
        assert old.levels[:2] == [5, 4]
        assert reporter.stats().protocol == "3.1.1"
        watcher.publish(f"{BASE}/cmd/ping", json.dumps({"request_id": "old-ping"}))
        answer = await watcher.await_for(topic_is(f"{BASE}/cmd/response"))
        assert answer.json()["ok"]
        await reporter.stop()  # while the front still forwards the clean "offline"
    finally:
        await old.stop()


async def test_configured_311(mosquitto_broker, make_config, collect, start_reporter) -> None:
    watcher = collect(mosquitto_broker)
    reporter, _ = await start_reporter(make_config(mosquitto_broker, protocol="3.1.1"))
    status = await watcher.await_for(topic_is(f"{BASE}/status"))
    assert status.json()["mqtt"]["protocol"] == "3.1.1" == reporter.stats().protocol


async def test_events_are_bounded_while_disconnected(
    mosquitto_broker, make_config, collect, start_reporter
) -> None:
    async with FaultProxy(mosquitto_broker.host, mosquitto_broker.port) as proxy:
        watcher = collect(mosquitto_broker)  # direct to the broker, never cut
        config = make_config(mosquitto_broker, port=proxy.port, queue_max=10)
        reporter, _ = await start_reporter(config)
        await async_poll_until(lambda: reporter.stats().connected, 10, "connected")
        reporter.event("started")
        first = await watcher.await_for(topic_is(f"{BASE}/events"))
        assert first.json()["seq"] == 1
        proxy.cut()
        await async_poll_until(lambda: not reporter.stats().connected, 10, "disconnect")
        for n in range(25):
            reporter.event("alarm", severity="warning", code="test", n=n)
        stats = reporter.stats()
        assert (stats.events_queued, stats.events_dropped) == (10, 15)
        mark = watcher.count()
        proxy.pass_through()
        status = await watcher.await_for(
            lambda m: m.topic == f"{BASE}/status" and m.json()["mqtt"]["events_dropped"] == 15,
            timeout=15,
            after=mark,
        )
        assert status.json()["mqtt"]["events_dropped"] == 15
        await watcher.await_for(
            lambda m: m.topic == f"{BASE}/events" and m.json()["details"].get("n") == 24,
            after=mark,
        )
        events = [m.json() for m in watcher.messages[mark:] if m.topic == f"{BASE}/events"]
        # QoS 1 is at least once: "started" may come again if its PUBACK was lost in the cut
        assert all(e["seq"] == 1 for e in events if "n" not in e["details"])
        flood = [e for e in events if "n" in e["details"]]
        # the oldest 15 went; the newest 10 arrive once, in order (seq 2 was n=0)
        assert [e["details"]["n"] for e in flood] == list(range(15, 25))
        assert [e["seq"] for e in flood] == list(range(17, 27))
        assert {e["instance"] for e in events} == {first.json()["instance"]}
        assert reporter.stats().events_queued == 0


async def test_black_holed_broker_never_blocks_the_caller(
    mosquitto_broker, make_config, collect, start_reporter
) -> None:
    """A broker that stops answering (TCP open, bytes vanish): calls stay instant, memory
    stays bounded: MAX_INFLIGHT messages with paho, queue_max in the outbox, the rest dropped."""
    async with FaultProxy(mosquitto_broker.host, mosquitto_broker.port) as proxy:
        config = make_config(mosquitto_broker, port=proxy.port, queue_max=10)
        reporter, daemon = await start_reporter(config)
        await async_poll_until(lambda: reporter.stats().connected, 10, "connected")
        await async_poll_until(lambda: proxy.stats.bytes_down > 0, 10, "first acks")
        proxy.blackhole()
        for batch in range(3):
            for n in range(100):
                reporter.event("alarm", code="flood", n=n)
                reporter.status_changed()
                stats = reporter.stats()
                assert stats.events_queued <= 10 and stats.in_flight <= MAX_INFLIGHT

            def drained(total: int = 100 * (batch + 1)) -> bool:
                """The supervisor took what it may: the outbox is empty or paho is full."""
                s = reporter.stats()
                accounted = s.events_queued + s.events_dropped + s.in_flight == total
                return accounted and (s.events_queued == 0 or s.in_flight == MAX_INFLIGHT)

            await async_poll_until(drained, 10, "supervisor caught up")
        daemon.fail_mic()
        reporter.status_changed()
        stats = reporter.stats()
        assert stats.in_flight == MAX_INFLIGHT  # paho holds no more than this
        assert stats.events_queued == 10 and stats.events_dropped == 300 - 10 - MAX_INFLIGHT
        assert stats.connected  # nothing noticed yet: keepalive will, later
        await asyncio.wait_for(reporter.stop(timeout_s=1.0), 5)
