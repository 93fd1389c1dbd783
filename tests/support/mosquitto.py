"""A real mosquitto on loopback for tests, plus a subscriber that records what it sees.

`mosquitto_broker` starts a plain broker on a free port; `mosquitto_factory` builds others
(TLS listener, password file, client certificates). Every broker runs in the foreground with
its config and log in tmp_path and is waited on with a deadline, never a sleep.
"""

from __future__ import annotations

import asyncio
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from edge_recorder.dashboard.broker import Broker, free_port
from tests.support.pki import make_pki

__all__ = [
    "Collector",
    "Mosquitto",
    "Received",
    "TlsFiles",
    "free_port",
    "make_tls_files",
    "wait_until",
]


def wait_until(predicate: Callable[[], bool], timeout: float = 10.0, what: str = "") -> None:
    """Poll `predicate` until true or fail at the deadline."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what or predicate}")
        time.sleep(0.01)


# ---------------------------------------------------------------- certificates


@dataclass(frozen=True)
class TlsFiles:
    ca_cert: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    other_ca_cert: Path  # a CA that signed nothing here: verification must fail with it


def make_tls_files(directory: Path) -> TlsFiles:
    """A test CA, a server certificate for 127.0.0.1/localhost, a client certificate, and a
    second CA that signed none of them."""
    pki = make_pki(directory / "pki", tag="edge-recorder test")
    other = make_pki(directory / "other", tag="some other")
    return TlsFiles(
        ca_cert=pki.ca_file,
        server_cert=pki.server_cert,
        server_key=pki.server_key,
        client_cert=pki.client_cert,
        client_key=pki.client_key,
        other_ca_cert=other.ca_file,
    )


# ---------------------------------------------------------------- the broker


@dataclass
class Mosquitto(Broker):
    """The loopback broker (edge_recorder.dashboard.broker) plus TLS and password options."""

    tls: TlsFiles | None = None
    require_certificate: bool = False
    users: dict[str, str] = field(default_factory=dict)

    def config_lines(self) -> list[str]:
        lines = super().config_lines()
        if self.users:
            pwfile = self.workdir / "passwd"
            pwfile.write_text("")
            for user, password in self.users.items():
                subprocess.run(["mosquitto_passwd", "-b", str(pwfile), user, password], check=True)
            pwfile.chmod(0o600)
            lines += ["allow_anonymous false", f"password_file {pwfile}"]
        if self.tls:
            lines += [
                f"cafile {self.tls.ca_cert}",
                f"certfile {self.tls.server_cert}",
                f"keyfile {self.tls.server_key}",
            ]
            if self.require_certificate:
                lines.append("require_certificate true")
        return lines


MosquittoFactory = Callable[..., Mosquitto]


@pytest.fixture
def mosquitto_factory(tmp_path: Path) -> Iterator[MosquittoFactory]:
    started: list[Mosquitto] = []

    def make(**options: Any) -> Mosquitto:
        broker = Mosquitto(workdir=tmp_path / f"mosquitto-{len(started)}", **options)
        started.append(broker)
        broker.start()
        return broker

    yield make
    for broker in started:
        broker.stop()


@pytest.fixture
def mosquitto_broker(mosquitto_factory: MosquittoFactory) -> Mosquitto:
    return mosquitto_factory()


# ---------------------------------------------------------------- a recording subscriber


@dataclass(frozen=True)
class Received:
    topic: str
    payload: bytes
    retain: bool
    at: float

    def json(self) -> Any:
        import json

        return json.loads(self.payload)


class Collector:
    """A paho subscriber that records every message and lets tests wait for one."""

    def __init__(
        self,
        host: str,
        port: int,
        topics: list[str],
        *,
        protocol: mqtt.MQTTProtocolVersion = mqtt.MQTTv5,
        tls_ca: Path | None = None,
        tls_cert: Path | None = None,
        tls_key: Path | None = None,
        username: str | None = None,
        password: str | None = None,
    ) -> None:
        self.messages: list[Received] = []
        self._cond = threading.Condition()
        self._subscribed = threading.Event()
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"test-{uuid.uuid4().hex[:10]}",
            protocol=protocol,
        )
        if tls_ca:
            self.client.tls_set(
                ca_certs=str(tls_ca),
                certfile=str(tls_cert) if tls_cert else None,
                keyfile=str(tls_key) if tls_key else None,
            )
        if username:
            self.client.username_pw_set(username, password)
        self.client.on_message = self._on_message
        self.client.on_socket_open = lambda _c, _u, sock: sock.setsockopt(
            socket.IPPROTO_TCP, socket.TCP_NODELAY, 1
        )
        self.client.on_subscribe = lambda *_a: self._subscribed.set()
        self.client.on_connect = lambda c, *_a: c.subscribe([(t, 1) for t in topics])
        self.client.connect(host, port)
        self.client.loop_start()
        if not self._subscribed.wait(10):
            raise AssertionError("collector could not subscribe")

    def _on_message(self, _c: Any, _u: Any, msg: mqtt.MQTTMessage) -> None:
        with self._cond:
            self.messages.append(
                Received(msg.topic, bytes(msg.payload), bool(msg.retain), time.monotonic())
            )
            self._cond.notify_all()

    def wait_for(
        self, predicate: Callable[[Received], bool], timeout: float = 10.0, after: int = 0
    ) -> Received:
        """The first message (from index `after`) matching `predicate`, waiting for it."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for message in self.messages[after:]:
                    if predicate(message):
                        return message
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    seen = [m.topic for m in self.messages[-20:]]
                    raise AssertionError(f"no matching message within {timeout} s; last: {seen}")
                self._cond.wait(remaining)

    async def await_for(
        self, predicate: Callable[[Received], bool], timeout: float = 10.0, after: int = 0
    ) -> Received:
        """`wait_for` without blocking the test's event loop."""
        return await asyncio.to_thread(self.wait_for, predicate, timeout, after)

    def count(self) -> int:
        with self._cond:
            return len(self.messages)

    def publish(self, topic: str, payload: bytes | str, retain: bool = False) -> None:
        info = self.client.publish(topic, payload, qos=1, retain=retain)
        info.wait_for_publish(timeout=10)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def mqtt_collector() -> Iterator[Callable[..., Collector]]:
    made: list[Collector] = []

    def make(broker: Mosquitto, topics: list[str], **options: Any) -> Collector:
        collector = Collector(broker.host, broker.port, topics, **options)
        made.append(collector)
        return collector

    yield make
    for collector in made:
        collector.close()
