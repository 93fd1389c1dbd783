"""Which QoS 1 messages paho still holds, so the supervisor hands over a bounded number.

paho keeps every unacknowledged QoS 1 message in memory and resends it after a reconnect; if
we gave it everything at once a dead broker would grow that store without bound. Tracking
PUBACKs lets events wait in our bounded outbox instead, and keeps at most one status in
flight so a slow broker gets the newest status rather than a backlog of old ones.
"""

from __future__ import annotations

import threading
from typing import Literal

import paho.mqtt.client as mqtt

Kind = Literal["status", "queue", "other"]


class InFlight:
    """mid → kind until PUBACK. Guarded by the reporter's condition (`lock`)."""

    def __init__(self, lock: threading.Condition) -> None:
        self._lock = lock
        self._tracked: dict[int, Kind] = {}
        self._acked_early: set[int] = set()  # PUBACKs that beat publish() returning its mid

    def reset(self) -> None:
        """A new paho client starts with nothing in flight."""
        with self._lock:
            self._tracked.clear()
            self._acked_early.clear()

    def acked(self, mid: int) -> None:
        """From paho's on_publish (network thread)."""
        with self._lock:
            if self._tracked.pop(mid, None) is None:
                self._acked_early.add(mid)
                if len(self._acked_early) > 1000:  # acks nobody will claim (old client)
                    self._acked_early.clear()
            self._lock.notify_all()

    def status_pending(self) -> bool:
        """Caller holds the lock."""
        return "status" in self._tracked.values()

    def queued_pending(self) -> int:
        """Caller holds the lock."""
        return sum(1 for kind in self._tracked.values() if kind == "queue")

    def send(self, client: mqtt.Client, topic: str, data: bytes, retain: bool, kind: Kind) -> bool:
        """Hand one QoS 1 message to paho and track it until its PUBACK.

        NO_CONN still counts as handed over: paho keeps QoS 1 messages and sends them after
        it reconnects, so taking them back would send them twice.
        """
        info = client.publish(topic, data, qos=1, retain=retain)
        if info.rc not in (mqtt.MQTT_ERR_SUCCESS, mqtt.MQTT_ERR_NO_CONN):
            return False
        with self._lock:
            if info.mid in self._acked_early:
                self._acked_early.discard(info.mid)
            else:
                self._tracked[info.mid] = kind
        return True
