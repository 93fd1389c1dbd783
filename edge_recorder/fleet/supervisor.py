"""The fleet reporter's supervisor thread ("fleet-mqtt"): one paho client per session, and
what to publish when (birth, availability corrections, discovery, status, queued events).

A mixin of `FleetReporter` (reporter.py), split out to keep each module readable: the
reporter's daemon side and paho callbacks set the shared state under `_lock`; this thread
waits on it and publishes. See reporter.py for the threads and why.
"""

from __future__ import annotations

import contextlib
import threading
import time
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import MQTTProtocolVersion

from edge_recorder.config.model import MqttConfig
from edge_recorder.fleet import payloads
from edge_recorder.fleet.connection import (
    MQTT_V311,
    ConnectionSettings,
    build_client,
    connect_async,
    protocol_name,
)
from edge_recorder.fleet.dispatch import CommandDispatcher
from edge_recorder.fleet.homeassistant import discovery_messages
from edge_recorder.fleet.inflight import InFlight
from edge_recorder.fleet.outbox import Outbox
from edge_recorder.fleet.presence import RetainedGuard
from edge_recorder.fleet.sysinfo import CachedProbe
from edge_recorder.fleet.topics import DeviceTopics
from edge_recorder.status import DeviceStatus
from edge_recorder.support.logs import get_logger
from edge_recorder.support.threads import name_native_thread

log = get_logger(__name__)
MAX_INFLIGHT = 20


class Supervisor:
    """The supervisor thread's methods; `FleetReporter` owns the state they share."""

    _cfg: MqttConfig
    _settings: ConnectionSettings
    _topics: DeviceTopics
    _location: str
    _system: CachedProbe
    _reconnect: tuple[int | None, int]
    _outbox: Outbox
    _lock: threading.Condition
    _commands: CommandDispatcher
    _status: DeviceStatus | None
    _protocol: MQTTProtocolVersion
    _session_seq: int
    _seq_used: bool
    _connected: bool
    _need_birth: bool
    _guard: RetainedGuard
    _need_discovery: bool
    _status_dirty: bool
    _inflight: InFlight
    _fallback: bool
    _stopping: bool
    _flush_s: float

    def _on_pre_connect(self, client: mqtt.Client, _userdata: Any) -> None: ...
    def _on_connect(self, c: mqtt.Client, u: Any, f: Any, r: Any, p: Any) -> None: ...
    def _on_connect_fail(self, _client: mqtt.Client, _userdata: Any) -> None: ...
    def _on_disconnect(self, c: mqtt.Client, u: Any, f: Any, r: Any, p: Any) -> None: ...
    def _on_publish(self, c: mqtt.Client, u: Any, mid: int, r: Any, p: Any) -> None: ...
    def _on_message(self, c: mqtt.Client, u: Any, msg: mqtt.MQTTMessage) -> None: ...
    def _replies_dropped(self) -> int:
        raise NotImplementedError  # FleetReporter's

    def _supervise(self) -> None:
        """The supervisor thread: a bug here must not silently end fleet reporting."""
        name_native_thread("fleet-mqtt")
        while True:
            try:
                if self._session() == "stop":
                    return
            except Exception as exc:
                log.error("mqtt supervisor failed; restarting", error_type=type(exc).__name__)
                with self._lock:
                    if self._stopping:
                        return
                    self._lock.wait(timeout=5.0)

    def _session(self) -> str:
        """One paho client from creation to shutdown (or to a protocol fallback)."""
        while True:
            client = build_client(
                self._settings,
                self._protocol,
                reconnect_min_s=self._reconnect[0],
                reconnect_max_s=self._reconnect[1],
                max_inflight=MAX_INFLIGHT,
            )
            client.on_pre_connect = self._on_pre_connect
            client.on_connect = self._on_connect
            client.on_connect_fail = self._on_connect_fail
            client.on_disconnect = self._on_disconnect
            client.on_publish = self._on_publish
            client.on_message = self._on_message
            self._inflight.reset()
            connect_async(client, self._settings, self._protocol)
            client.loop_start()
            try:
                outcome = self._pump(client)
            except BaseException:
                with contextlib.suppress(Exception):  # never two clients with one client id
                    client.disconnect()
                    client.loop_stop()
                raise
            if outcome == "fallback":
                client.loop_stop()
                log.warning("mqtt broker refused protocol 5; falling back to 3.1.1")
                with self._lock:
                    self._protocol, self._fallback, self._seq_used = MQTT_V311, False, True
                continue
            self._shutdown(client, self._flush_s)
            return "stop"

    def _pump(self, client: mqtt.Client) -> str:
        while True:
            with self._lock:
                while not self._work_ready():
                    self._lock.wait(timeout=self._wait_s())
                if self._stopping:
                    return "stop"
                if self._fallback:
                    return "fallback"
                corrections = self._guard.due(time.monotonic()) if self._connected else set()
                birth = self._need_birth
                online = self._topics.availability in corrections
                if self._topics.status in corrections:
                    self._status_dirty = True
                discovery = self._need_discovery or (birth and self._cfg.homeassistant_discovery)
                self._need_birth = self._need_discovery = False
                send_status = birth or (self._status_dirty and not self._inflight.status_pending())
                room = MAX_INFLIGHT - self._inflight.queued_pending()
            if birth or online:
                self._publish_online(client)
            if discovery:
                self._publish_discovery(client)
            if send_status:
                self._publish_status(client)
            if room > 0:
                self._drain(client, room)

    def _work_ready(self) -> bool:
        """Caller holds the lock; also tells the outbox whether a put should wake us."""
        self._outbox.listening = self._connected and (
            self._inflight.queued_pending() < MAX_INFLIGHT
        )
        if self._stopping or self._fallback:
            return True
        if not self._connected:
            return False
        return (
            self._need_birth
            or self._guard.wait_s(time.monotonic()) == 0.0
            or self._need_discovery
            or (self._status_dirty and not self._inflight.status_pending())
            or (len(self._outbox) > 0 and self._inflight.queued_pending() < MAX_INFLIGHT)
        )

    def _wait_s(self) -> float:
        """Caller holds the lock: how long the supervisor may sleep (a paced correction)."""
        wait = self._guard.wait_s(time.monotonic()) if self._connected else None
        return 5.0 if wait is None else min(5.0, max(0.01, wait))

    def _publish_online(self, client: mqtt.Client) -> None:
        body = payloads.availability_payload(
            "online", self._session_seq, "connected", payloads.now()
        )
        data = payloads.encode(body)
        with self._lock:
            self._guard.published(self._topics.availability, data)
        self._inflight.send(client, self._topics.availability, data, True, "other")

    def _publish_discovery(self, client: mqtt.Client) -> None:
        info = self._system.collect()
        for topic, config in discovery_messages(
            self._topics, location=self._location, version=info.version, hw=info.model
        ):
            self._inflight.send(client, topic, payloads.encode(config), True, "other")

    def _publish_status(self, client: mqtt.Client) -> None:
        with self._lock:
            status = self._status or DeviceStatus()
            self._status_dirty = False
            meta = payloads.StatusMeta(
                device_id=self._topics.device_id,
                location=self._location,
                birth_seq=self._session_seq,
                interval_s=self._cfg.status_interval_s,
                protocol=protocol_name(self._protocol),
                events_dropped=self._outbox.events_dropped,
                events_queued=self._outbox.events_queued,
                commands_rejected=self._commands.rejected,
                commands_limited=self._commands.limited,
                commands_ignored=self._commands.ignored,
                replies_dropped=self._replies_dropped(),
            )
        body = payloads.status_payload(status, self._system.collect(), meta, payloads.now())
        if payloads.find_forbidden(body):  # last line of defence; the builders never do this
            log.error("status not published: forbidden field")
            return
        data = payloads.encode(body)
        with self._lock:
            self._guard.published(self._topics.status, data)
        if not self._inflight.send(client, self._topics.status, data, True, "status"):
            with self._lock:
                self._status_dirty = True

    def _drain(self, client: mqtt.Client, room: int) -> None:
        batch = self._outbox.take(room)
        for index, msg in enumerate(batch):
            if not self._inflight.send(client, msg.topic, msg.payload, msg.retain, "queue"):
                self._outbox.push_back(batch[index:])
                return

    def _shutdown(self, client: mqtt.Client, deadline_s: float = 3.0) -> None:
        """Clean exit: queued messages, then retained `offline`, then DISCONNECT."""
        deadline = time.monotonic() + deadline_s
        if self._connected:
            self._drain(client, len(self._outbox))
            body = payloads.availability_payload(
                "offline", self._session_seq, "shutdown", payloads.now()
            )
            data = payloads.encode(body)
            with self._lock:
                self._guard.published(self._topics.availability, data)
            info = client.publish(self._topics.availability, data, qos=1, retain=True)
            with contextlib.suppress(RuntimeError, ValueError):
                info.wait_for_publish(timeout=max(0.1, deadline - time.monotonic()))
        client.disconnect()
        client.loop_stop()
        log.info("mqtt stopped", birth_seq=self._session_seq)
