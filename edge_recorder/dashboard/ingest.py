"""The MQTT side of the dashboard: paho's thread takes messages in, the asyncio loop decides.

paho calls `on_message` on its own thread for every message; that callback must stay cheap
whatever the devices send, so it only caps the size, finds the device in the topic, charges
the device's token bucket (a flooding device costs a counter, not a JSON parse) and appends
to a bounded deque, waking the loop once per batch. Everything else (JSON, schemas, fleet
state) runs on the loop, which owns `FleetState` alone, so nothing there needs a lock.
What happens next (history, live updates, command replies) is the caller's: `serve` passes
callbacks, which keeps this module below those in the import layers.

A flood still costs paho's own work per message (reading and parsing it before `on_message`
can drop it), and most of that is the thread waking for each message alone. So while a
device floods and nothing else is waiting on the socket, paho's thread pauses
`FLOOD_PAUSE_S`: the messages gather in the socket and are read back to back, one wake-up for
the lot (a 200 messages/s flood: ~190 → ~90 µs of paho's thread per message). It pauses only
when the socket is empty, so a backlog is never read more slowly; other devices' messages,
and commands the dashboard publishes, may wait up to `FLOOD_PAUSE_S` longer meanwhile.
"""

from __future__ import annotations

import asyncio
import re
import select
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as mqtt

from edge_recorder.dashboard.config import LimitsSettings, MqttSettings
from edge_recorder.dashboard.fleetstate import FleetState
from edge_recorder.dashboard.validate import Invalid, Valid, classify
from edge_recorder.fleet.connection import (
    MQTT_V311,
    ConnectionSettings,
    broker_password,
    build_client,
    connect_async,
    tls_context,
)
from edge_recorder.fleet.topics import fleet_filters
from edge_recorder.support.logs import get_logger

log = get_logger(__name__)

QUEUE_MAX = 20000
BATCH_MAX = 2000  # items per loop callback; more are drained in the next one
FLOOD_REPORT_S = 1.0  # how late a flood's count may reach the page
BATCH_DELAY_S = 0.1  # how long a message may wait for others to share its loop wake-up
FLOOD_PAUSE_S = 0.05  # paho's thread rests this long when a flood is all there is to read
DEVICE_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


@dataclass
class _Bucket:
    tokens: float
    last: float


@dataclass(frozen=True)
class _Message:
    topic: str
    payload: bytes | None  # None: over the size cap
    received_at: float


def connection_settings(settings: MqttSettings) -> ConnectionSettings:
    """The device code's ConnectionSettings from the dashboard's [mqtt] section."""
    password = broker_password(settings.username, settings.password_file)
    tls = None
    if settings.tls:
        tls = tls_context(settings.ca_file, settings.client_cert_file, settings.client_key_file)
    return ConnectionSettings(
        host=settings.host,
        port=settings.effective_port,
        keepalive_s=30,
        client_id=f"edge-recorder-dashboard-{uuid.uuid4().hex[:8]}",
        prefer_v5=False,
        username=settings.username,
        password=password,
        tls=tls,
    )


class Ingest:
    """One MQTT subscription feeding `FleetState` on the asyncio loop.

    `on_valid(item, received_at)` runs on the loop for every valid message after the state
    took it (history, command replies); `on_changed(device_ids)` once per drained batch with
    the devices whose summary changed, and with an empty set when the broker connection
    changed.
    """

    def __init__(
        self,
        mqtt_settings: MqttSettings,
        limits: LimitsSettings,
        state: FleetState,
        *,
        on_valid: Callable[[Valid, float], None],
        on_changed: Callable[[set[str]], None],
        clock: Callable[[], float] = time.time,
        pause: Callable[[float], None] = time.sleep,
    ) -> None:
        self.settings = mqtt_settings
        self.limits = limits
        self.prefix = mqtt_settings.topic_prefix
        self.state = state
        self._on_valid = on_valid
        self._on_changed = on_changed
        self._clock = clock
        self._queue: deque[_Message] = deque()
        self._floods: dict[str | None, int] = {}
        self._buckets: dict[str, _Bucket] = {}
        self._lock = threading.Lock()
        self._wake_pending = False
        self._flood_wake_at = 0.0  # a flood wakes the loop at most once per FLOOD_REPORT_S
        self._pause = pause
        self._loop: asyncio.AbstractEventLoop | None = None
        self._client: mqtt.Client | None = None
        self.connected = False
        self.since: float | None = None
        self.error: str | None = None
        self.received = 0
        self.queue_dropped = 0

    # ---------------------------------------------------------------- lifecycle

    @property
    def url(self) -> str:
        scheme = "mqtts" if self.settings.tls else "mqtt"
        return f"{scheme}://{self.settings.host}:{self.settings.effective_port}"

    def broker_status(self) -> dict[str, object]:
        """The `Broker` JSON of the API."""
        return {
            "connected": self.connected,
            "since": self.since,
            "error": self.error,
            "url": self.url,
        }

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Connect in paho's thread (it retries every 1-30 s until the broker answers)."""
        self._loop = loop
        settings = connection_settings(self.settings)
        client = build_client(settings, MQTT_V311, reconnect_min_s=1, reconnect_max_s=30)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.on_subscribe = self._on_subscribe
        self._client = client
        connect_async(client, settings, MQTT_V311)
        client.loop_start()
        log.info("dashboard mqtt starting", broker=self.url, prefix=self.prefix)

    def stop(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            client.disconnect()
            client.loop_stop()

    def publish(self, topic: str, payload: bytes) -> bool:
        """QoS 1, not retained; False when there is no connection to queue it on."""
        client = self._client
        if client is None or not self.connected:
            return False
        info = client.publish(topic, payload, qos=1, retain=False)
        return info.rc == mqtt.MQTT_ERR_SUCCESS

    # ---------------------------------------------------------------- paho thread

    def _on_connect(self, client: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if reason.is_failure:
            self._set_broker(False, f"refused: {reason}")
            return
        # What devices publish is read at QoS 0: no acks to send, and mosquitto hands a new
        # subscriber every retained status at once instead of queueing QoS 1 copies (its
        # default max_queued_messages of 1000 would drop most of a large fleet's). A status
        # lost in a reconnect comes back retained; command answers keep QoS 1.
        subscriptions = [(topic, 0) for topic in fleet_filters(self.prefix)]
        client.subscribe([*subscriptions, (f"{self.prefix}/+/cmd/response", 1)])

    def _on_subscribe(self, _c: mqtt.Client, _u: Any, _mid: Any, codes: Any, _p: Any) -> None:
        """Connected means subscribed: from here on nothing the devices publish is missed."""
        if any(getattr(code, "is_failure", False) for code in codes):
            self._set_broker(False, "subscription refused by the broker (ACL?)")
            return
        self._set_broker(True, None)

    def _on_disconnect(self, _c: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        self._set_broker(False, None if self._client is None else f"disconnected: {reason}")

    def _set_broker(self, connected: bool, error: str | None) -> None:
        changed = connected != self.connected
        self.connected = connected
        self.error = error
        if changed:
            self.since = self._clock()
            log.info("dashboard broker connection", connected=connected, reason=error)
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._on_changed, set())

    def _device_of(self, topic: str) -> str | None:
        head = f"{self.prefix}/"
        if not topic.startswith(head):
            return None
        device = topic[len(head) :].split("/", 1)[0]
        return device if DEVICE_ID.match(device) else None

    def _allow(self, key: str, now: float) -> bool:
        """The device's token bucket: `device_burst` at once, `device_rate_per_s` sustained."""
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= 4 * self.limits.max_devices:
                self._buckets.clear()  # hostile ids: start over rather than grow
            bucket = self._buckets[key] = _Bucket(float(self.limits.device_burst), now)
        rate, burst = self.limits.device_rate_per_s, float(self.limits.device_burst)
        bucket.tokens = min(burst, bucket.tokens + (now - bucket.last) * rate)
        bucket.last = now
        if bucket.tokens < 1.0:
            return False
        bucket.tokens -= 1.0
        return True

    def _on_message(self, _c: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        received_at = self._clock()
        device = self._device_of(msg.topic)
        size = len(msg.payload)
        with self._lock:
            self.received += 1
            flooding = not self._allow(device or "", time.monotonic())
            if flooding:
                self._count_flood(device)
            elif len(self._queue) >= QUEUE_MAX:
                self.queue_dropped += 1
                return
            else:
                payload = None if size > self.limits.max_payload_bytes else bytes(msg.payload)
                self._queue.append(_Message(msg.topic, payload, received_at))
                if self._wake_pending:
                    return
                self._wake_pending = True
        if flooding:
            self._rest_in_flood()  # outside the lock: the loop's drain must not wait on it
            return
        # The drain runs BATCH_DELAY_S after the first message of a batch: one loop
        # wake-up for all that arrive meanwhile (~1 in 3 at 1,000 devices), not one each.
        self._drain_later(BATCH_DELAY_S)

    def _count_flood(self, device: str | None) -> None:
        """Count a refused message (under the lock); one drain a second reports them (other
        devices' messages still wake the loop at once meanwhile)."""
        self._floods[device] = self._floods.get(device, 0) + 1
        if self._wake_pending or time.monotonic() < self._flood_wake_at:
            return  # the drain already scheduled reports it
        self._flood_wake_at = time.monotonic() + FLOOD_REPORT_S
        self._drain_later(FLOOD_REPORT_S)

    def _drain_later(self, delay_s: float) -> None:
        """From paho's thread: have the loop run `drain` in `delay_s`."""
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(loop.call_later, delay_s, self.drain)

    def _rest_in_flood(self) -> None:
        """Pause paho's thread if the flood is all there is to read (module doc)."""
        client = self._client
        sock = client.socket() if client is not None else None
        if sock is None:
            return
        try:
            waiting, _, _ = select.select([sock], [], [], 0)
        except (OSError, ValueError):  # closed under us: the disconnect handles it
            return
        if waiting:
            return  # a backlog: read it at full speed
        self._pause(FLOOD_PAUSE_S)

    # ---------------------------------------------------------------- the loop

    def drain(self) -> None:
        """Apply up to BATCH_MAX queued messages to the state (loop thread)."""
        with self._lock:
            batch = [self._queue.popleft() for _ in range(min(BATCH_MAX, len(self._queue)))]
            floods, self._floods = self._floods, {}
            more = bool(self._queue)
            self._wake_pending = more
        changed: set[str] = set()
        now = self._clock()
        for device, count in floods.items():
            self._apply(Invalid(device, "flood", "over the device's message rate"), now, count)
            if device is not None:
                changed.add(device)
        for message in batch:
            item = self._classify(message)
            if item is None:
                continue
            device_id = self._apply(item, message.received_at)
            if device_id is not None:
                changed.add(device_id)
            if isinstance(item, Valid):
                self._on_valid(item, message.received_at)
        if changed:
            self._on_changed(changed)
        if more and self._loop is not None:
            self._loop.call_soon(self.drain)

    def _classify(self, message: _Message) -> Valid | Invalid | None:
        if message.payload is None:
            device = self._device_of(message.topic)
            limit = self.limits.max_payload_bytes
            return Invalid(device, "too_large", f"payload over {limit} bytes")
        try:
            return classify(
                self.prefix, message.topic, message.payload, self.limits.max_payload_bytes
            )
        except Exception:  # a validator bug must not stop the dashboard
            log.exception("classify failed", topic=message.topic)
            return Invalid(self._device_of(message.topic), "schema", "unreadable")

    def _apply(self, item: Valid | Invalid, received_at: float, count: int = 1) -> str | None:
        if isinstance(item, Invalid) and item.device_id is None:
            self.state.note_unattributed(item.kind, count)
            return None
        return self.state.apply(item, received_at, count)
