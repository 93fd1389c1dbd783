"""The device's MQTT presence: availability, status, events, and commands in.

Threads and why: paho's network loop runs on its own thread (`loop_start`), and one
supervisor thread ("fleet-mqtt") decides what to publish; the daemon's asyncio loop only calls
non-blocking methods (`event`, `status_changed`) and runs commands. So a slow or vanished
broker can never stall audio capture or the event loop: the worst case is a full outbox,
which drops its oldest event and says so in the next status.

Sessions: every connection gets a new birth sequence number, carried by its `online` message
and its Last Will, Sparkplug-style. Whatever lands on our retained availability or status
topic while we are connected and is not ours (a late will of an older session, a forgery,
whatever birth_seq it claims) is overruled by publishing ours again (presence.py).

Commands are subscribed with MQTT 5's no-local (our answers do not come back to us) and
retain-as-published (a retained command is recognisable as such even when it is published
while we listen; see commands.py); limits.py and dispatch.py keep a flood from starving them.
"""

from __future__ import annotations

import asyncio
import itertools
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from secrets import token_hex
from typing import Any

import paho.mqtt.client as mqtt

from edge_recorder.config.model import Config
from edge_recorder.fleet import payloads
from edge_recorder.fleet.birth import BirthCounter
from edge_recorder.fleet.connection import (
    MQTT_V5,
    MQTT_V311,
    UNSUPPORTED_PROTOCOL,
    protocol_name,
    settings_from_config,
    subscriptions,
)
from edge_recorder.fleet.dispatch import CommandDispatcher
from edge_recorder.fleet.inflight import InFlight
from edge_recorder.fleet.outbox import Message, Outbox
from edge_recorder.fleet.presence import RetainedGuard
from edge_recorder.fleet.statusfeed import StatusFeed
from edge_recorder.fleet.supervisor import MAX_INFLIGHT as MAX_INFLIGHT  # re-exported
from edge_recorder.fleet.supervisor import Supervisor
from edge_recorder.fleet.sysinfo import CachedProbe, LocalSystem, SystemProbe
from edge_recorder.fleet.topics import HA_STATUS_TOPIC, DeviceTopics
from edge_recorder.status import CommandHandler, DeviceStatus, FleetCounters
from edge_recorder.support.logs import get_logger

log = get_logger(__name__)


@dataclass(frozen=True)
class ReporterStats:
    connected: bool
    protocol: str
    birth_seq: int
    connects: int
    events_queued: int
    events_dropped: int
    in_flight: int  # handed to paho, PUBACK not yet seen (bounded by MAX_INFLIGHT)
    commands_rejected: int
    commands_limited: int  # refused by the rate limit (answered rate_limited or not at all)
    commands_ignored: int  # retained commands: never executed, never answered
    replies_dropped: int  # answers not sent: over the refusal budget, or the queue was full
    last_connect_error: str | None


class FleetReporter(Supervisor):
    """Built by the daemon with the config, a status provider and the command handler."""

    def __init__(
        self,
        config: Config,
        status_provider: Callable[[], DeviceStatus],
        handler: CommandHandler,
        *,
        system: SystemProbe | None = None,
        reconnect_min_s: int | None = None,
        reconnect_max_s: int = 60,
        command_timeout_s: float = 30.0,
        max_pending_commands: int = 16,
    ) -> None:
        self._cfg = config.mqtt
        self._settings = settings_from_config(config)
        self._location = config.device.location
        self._topics = DeviceTopics(config.mqtt.topic_prefix, config.device.id)
        self._feed = StatusFeed(status_provider, self._take_status, config.mqtt.status_interval_s)
        self._system = CachedProbe(
            system or LocalSystem(config.spool.dir), config.mqtt.status_interval_s / 2
        )
        self._reconnect = (reconnect_min_s, reconnect_max_s)
        self._outbox = Outbox(config.mqtt.queue_max)
        self._lock = self._outbox.wakeup  # one condition guards all shared state below
        self._birth = BirthCounter(config.mqtt.birth_seq_file)
        self._commands = CommandDispatcher(
            self._topics,
            handler,
            self._outbox,
            max_bytes=config.mqtt.max_command_bytes,
            timeout_s=command_timeout_s,
            max_pending=max_pending_commands,
            rate_per_s=config.mqtt.command_rate_per_s,
            burst=config.mqtt.command_burst,
            loop=lambda: self._loop,
            secrets=self._secrets,
            on_done=self.status_changed,
        )
        self._event_seq = itertools.count(1)
        self._instance = token_hex(4)  # tells this process's events from the previous one's
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._status: DeviceStatus | None = None
        self._protocol = MQTT_V5 if self._settings.prefer_v5 else MQTT_V311
        self._session_seq = 0
        self._seq_used = True
        self._connected = False
        self._connects = 0
        self._need_birth = False
        self._guard = RetainedGuard(
            [self._topics.availability, self._topics.status], time.monotonic()
        )
        self._need_discovery = False
        self._status_dirty = False
        self._inflight = InFlight(self._lock)
        self._fallback = False
        self._stopping = False
        self._flush_s = 3.0
        self._connect_error: str | None = None

    @staticmethod
    def enabled(config: Config) -> bool:
        """MQTT is off unless `mqtt.host` is set."""
        return bool(config.mqtt.host)

    @property
    def topics(self) -> DeviceTopics:
        return self._topics

    # ---- the daemon's side (asyncio loop thread unless noted) ----

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._feed.start()
        self._thread = threading.Thread(target=self._supervise, name="fleet-mqtt", daemon=True)
        self._thread.start()

    async def stop(self, timeout_s: float = 5.0) -> None:
        """Flush what we can, publish `offline` (no will on a clean exit), disconnect."""
        self._feed.stop()
        with self._lock:
            self._flush_s = min(3.0, timeout_s / 2)
            self._stopping = True
            self._lock.notify_all()
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join, timeout_s)

    def status_changed(self) -> None:
        """Ask for a status publish now (any thread; never blocks)."""
        self._feed.changed()

    def offer_status(self, status: DeviceStatus) -> None:
        """The daemon's status from its health pass (loop thread): the one-second check for
        news, on a wake-up the daemon makes anyway (statusfeed.py)."""
        self._feed.offer(status)

    def event(
        self,
        event: payloads.EventType,
        *,
        severity: payloads.Severity = "info",
        encounter_ref: str | None = None,
        code: str | None = None,
        message: str | None = None,
        **details: Any,
    ) -> None:
        """Queue one event (any thread; never blocks; drops the oldest when full)."""
        secrets = self._secrets()
        clean, dropped = payloads.sanitize_details(details, secrets)
        if dropped:
            log.warning("event details dropped", event=event, keys=",".join(dropped))
        body = payloads.event_payload(
            device_id=self._topics.device_id,
            instance=self._instance,
            birth_seq=self._session_seq,
            seq=next(self._event_seq),
            event=event,
            at=payloads.now(),
            severity=severity,
            encounter=encounter_ref,
            code=code,
            message=message,
            details=clean,
            secrets=secrets,
        )
        self._outbox.put(Message(self._topics.events, payloads.encode(body), False, "event"))

    def stats(self) -> ReporterStats:
        with self._lock:
            return ReporterStats(
                connected=self._connected,
                protocol=protocol_name(self._protocol),
                birth_seq=self._session_seq,
                connects=self._connects,
                events_queued=self._outbox.events_queued,
                events_dropped=self._outbox.events_dropped,
                in_flight=self._inflight.queued_pending(),
                commands_rejected=self._commands.rejected,
                commands_limited=self._commands.limited,
                commands_ignored=self._commands.ignored,
                replies_dropped=self._replies_dropped(),
                last_connect_error=self._connect_error,
            )

    def counters(self) -> FleetCounters:
        """What `ctl status` shows of fleet reporting (the MQTT status has the same)."""
        stats = self.stats()
        return FleetCounters(
            connected=stats.connected,
            events_dropped=stats.events_dropped,
            commands_rejected=stats.commands_rejected,
            commands_limited=stats.commands_limited,
            commands_ignored=stats.commands_ignored,
            replies_dropped=stats.replies_dropped,
        )

    def _replies_dropped(self) -> int:
        return self._commands.replies_dropped + self._outbox.responses_dropped

    def _take_status(self, status: DeviceStatus) -> None:
        with self._lock:
            self._status = status
            self._status_dirty = True
            self._lock.notify_all()

    def _secrets(self) -> payloads.Secrets:
        """The current correlation id and the keyed ref to quote instead (the status's)."""
        status = self._status
        if status is None or not status.correlation_id:
            return payloads.NO_SECRETS
        return {status.correlation_id: status.encounter_ref or payloads.UNKNOWN_REF}

    # ---- paho callbacks (paho's network thread) ----

    def _on_pre_connect(self, client: mqtt.Client, _userdata: Any) -> None:
        """A fresh birth number per session, in the will before CONNECT is sent."""
        with self._lock:
            if self._seq_used or self._session_seq == 0:
                self._session_seq = self._birth.next()
                self._seq_used = False
            seq = self._session_seq
        will = payloads.availability_payload("offline", seq, "lost", payloads.now())
        client.will_set(self._topics.availability, payloads.encode(will), qos=1, retain=True)

    def _on_connect(
        self, client: mqtt.Client, _u: Any, _flags: Any, reason: Any, _props: Any
    ) -> None:
        if reason.is_failure:
            with self._lock:
                changed, self._connect_error = str(reason) != self._connect_error, str(reason)
                if self._protocol == MQTT_V5 and reason.value == UNSUPPORTED_PROTOCOL:
                    self._fallback = True
                self._lock.notify_all()
            if changed:
                log.warning("mqtt connection refused", reason=str(reason))
            return
        client.subscribe(self._subscriptions())
        with self._lock:
            self._guard.connected()
            self._connected = True
            self._connects += 1
            self._seq_used = True
            self._connect_error = None
            self._need_birth = True
            self._lock.notify_all()
        log.info(
            "mqtt connected", protocol=protocol_name(self._protocol), birth_seq=self._session_seq
        )

    def _subscriptions(self) -> list[tuple[str, Any]]:
        others = [self._topics.availability, self._topics.status]
        if self._cfg.homeassistant_discovery:
            others.append(HA_STATUS_TOPIC)
        return subscriptions(self._topics.command_filter, others, self._protocol)

    def _on_connect_fail(self, _client: mqtt.Client, _userdata: Any) -> None:
        # paho calls this inside its `except OSError:`, so the cause is still at hand
        exc = sys.exc_info()[1]
        reason = f"{type(exc).__name__}: {exc}" if exc else "connection failed"
        with self._lock:
            changed, self._connect_error = reason != self._connect_error, reason
        if changed:
            log.warning(
                "mqtt connection failed",
                reason=reason,
                host=self._settings.host,
                port=self._settings.port,
            )

    def _on_disconnect(self, _c: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        with self._lock:
            was = self._connected
            self._connected = False
            self._lock.notify_all()
        if was:
            log.warning("mqtt disconnected", reason=str(reason))

    def _on_publish(self, _c: mqtt.Client, _u: Any, mid: int, _reason: Any, _p: Any) -> None:
        self._inflight.acked(mid)

    def _on_message(self, _client: mqtt.Client, _userdata: Any, msg: mqtt.MQTTMessage) -> None:
        try:
            if msg.topic in (self._topics.availability, self._topics.status):
                self._check_retained(msg.topic, bytes(msg.payload))
            elif msg.topic == HA_STATUS_TOPIC:
                if msg.payload.strip() == b"online":
                    with self._lock:
                        self._need_discovery = True
                        self._lock.notify_all()
            else:
                name = self._topics.command_name(msg.topic)
                if name is not None:
                    self._commands.receive(name, bytes(msg.payload), bool(msg.retain))
        except Exception as exc:  # nothing received may take the network thread down
            log.error("mqtt message handling failed", error_type=type(exc).__name__)

    def _check_retained(self, topic: str, payload: bytes) -> None:
        with self._lock:
            if self._guard.received(topic, payload):
                self._lock.notify_all()
