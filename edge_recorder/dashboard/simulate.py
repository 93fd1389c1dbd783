"""A simulated fleet on a real broker: for `fleet serve --demo N`, browser tests, benchmarks.

Why it looks like this: the dashboard must be exercised with what devices really send, so
every payload follows the JSON schemas in `edge_recorder.fleet.schemas` (the tests check it)
and goes through a real broker; nothing inside the dashboard is faked. One paho client
publishes for the whole fleet (a broker cannot tell), each device on its own schedule
(a phase inside the interval), so the load is spread like a real fleet's rather than arriving
in one wave. Everything is derived from `seed`: device kinds, ids, levels, event ids, so a
demo, a test and a benchmark see the same fleet. The offline device is shown exactly as its
Last Will would leave it (retained `offline`/`lost` with the session's birth_seq).
"""

from __future__ import annotations

import heapq
import secrets
import socket
import threading
import time
from datetime import UTC, datetime

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from edge_recorder.dashboard.simdevices import (
    PROBLEM_KINDS,
    Message,
    SimDevice,
    SimulatedDevices,
)
from edge_recorder.fleet.payloads import encode
from edge_recorder.support.logs import get_logger

__all__ = ["PROBLEM_KINDS", "Message", "SimDevice", "SimulatedFleet"]

log = get_logger(__name__)


def _nodelay(_client: mqtt.Client, _userdata: object, sock: object) -> None:
    """No Nagle delay on the fleet's socket (latency is what the benchmark measures)."""
    if isinstance(sock, socket.socket):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class SimulatedFleet(SimulatedDevices):
    """N schema-valid devices publishing availability, status and events to a broker, each on
    its own schedule (see `SimulatedDevices` for what they publish)."""

    def __init__(
        self,
        host: str,
        port: int,
        prefix: str = "edge-recorder",
        count: int = 50,
        seed: int = 1,
        interval_s: float = 30.0,
        speed: float = 1.0,
    ) -> None:
        super().__init__(prefix, count, seed, interval_s, speed)
        self.host, self.port = host, port
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._client: mqtt.Client | None = None
        self._connected = threading.Event()
        self.published = 0

    # ------------------------------------------------------------------ the broker side

    def _connect(self) -> mqtt.Client:
        if self._client is not None:
            return self._client
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"simulated-fleet-{self.seed}-{secrets.token_hex(3)}",
        )
        client.max_inflight_messages_set(500)
        client.reconnect_delay_set(1, 30)
        client.on_socket_open = _nodelay

        def on_connect(
            _c: mqtt.Client,
            _u: object,
            _f: mqtt.ConnectFlags,
            rc: ReasonCode,
            _p: Properties | None,
        ) -> None:
            if not rc.is_failure:
                self._connected.set()

        client.on_connect = on_connect
        client.connect(self.host, self.port)
        client.loop_start()
        if not self._connected.wait(10):
            client.loop_stop()
            raise ConnectionError(f"simulated fleet: no MQTT connection to {self.host}:{self.port}")
        self._client = client
        log.info("simulated fleet connected", devices=len(self.devices), port=self.port)
        return client

    def _send(self, messages: list[Message]) -> list[mqtt.MQTTMessageInfo]:
        client = self._connect()
        infos = []
        for message in messages:
            body = encode(message.payload)
            infos.append(client.publish(message.topic, body, qos=1, retain=message.retain))
        self.published += len(messages)
        return infos

    def publish_all(self, timeout: float = 30.0) -> int:
        """One round for every device now; returns once the broker acknowledged all of it."""
        infos = self._send(self.round_messages(datetime.now(UTC)))
        deadline = time.monotonic() + timeout
        for info in infos:
            info.wait_for_publish(max(0.01, deadline - time.monotonic()))
        return len(infos)

    def start(self, publish_first: bool = True) -> None:
        """Publish a round at once (unless told not to), then each device every
        interval_s / speed, at its own phase of the interval."""
        self._stop.clear()
        if publish_first:
            self.publish_all()
        else:
            self._connect()
        thread = threading.Thread(target=self._run, name="simulated-fleet", daemon=True)
        self._threads.append(thread)
        thread.start()

    def _run(self) -> None:
        origin = time.monotonic()
        due = [(origin + d.phase * self.period_s, i) for i, d in enumerate(self.devices)]
        heapq.heapify(due)
        while not self._stop.is_set():
            when, index = due[0]
            wait = when - time.monotonic()
            if wait > 0:
                self._stop.wait(wait)
                continue
            heapq.heapreplace(due, (when + self.period_s, index))
            with self._lock:
                messages = self.device_messages(self.devices[index], datetime.now(UTC))
            self._send(messages)

    def flood(self, device_id: str, per_s: float) -> None:
        """Make one device publish its status `per_s` times a second until `stop()`."""
        device = self._by_id[device_id]
        self._connect()

        def run() -> None:
            start, sent = time.monotonic(), 0
            while not self._stop.wait(0.02):
                due = int((time.monotonic() - start) * per_s) - sent
                for _ in range(due):
                    with self._lock:
                        status = self.status(device, datetime.now(UTC))
                    self._send([Message(self._topic(device, "status"), status, True)])
                sent += max(due, 0)

        thread = threading.Thread(target=run, name=f"flood-{device_id}", daemon=True)
        self._threads.append(thread)
        thread.start()

    def stop(self) -> None:
        """Stop the schedule and the floods, then disconnect (retained messages stay)."""
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=10)
        self._threads.clear()
        client, self._client = self._client, None
        if client is not None:
            client.disconnect()
            client.loop_stop()
        self._connected.clear()
