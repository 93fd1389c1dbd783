"""Keeping our retained availability and status ours: whoever else writes there is overruled.

A retained message on `<base>/availability` or `<base>/status` is what every dashboard that
connects later reads first. Only the device should write there; a broker ACL is the real
protection, but a late Last Will of an older session, a misconfigured tool, or a forged
`offline` can still land there. The old rule compared birth sequence numbers ("rebirth if an
`offline` with a LOWER birth_seq appears") and so never corrected a forged `offline` that
claimed a higher one, leaving the device offline for every dashboard until it reconnected.

The rule now ignores what the message claims and asks only whether we published it. The
device is subscribed to both topics; the broker forwards every message on a topic in the
order it stored them, our own included. So after the echo of our own latest publish, any
message on the topic that is not one of our recent payloads replaced ours: we publish ours
again. Messages before that echo (the retained copy delivered on subscribe, from an older
session) are about to be replaced by the birth publish and are ignored.

Corrections are paced by a token bucket (3 at once, then one per 10 s): two processes
configured with the same device id would otherwise overwrite each other as fast as the
network allows. Each correction logs a warning naming the topic leaf, which is how such a
clash shows itself.
"""

from __future__ import annotations

import hashlib
from collections import deque

from edge_recorder.fleet.limits import TokenBucket
from edge_recorder.support.logs import get_logger

log = get_logger(__name__)
REMEMBERED = 8  # our recent payloads per topic (at most one status is in flight at a time)
CORRECTION_BURST = 3
CORRECTION_EVERY_S = 10.0


def _digest(payload: bytes) -> bytes:
    return hashlib.blake2b(payload, digest_size=16).digest()


class RetainedGuard:
    """Our recent retained payloads per topic, and which topics need republishing.

    Not thread-safe: the reporter calls it with its lock held (paho's thread on receipt,
    the supervisor thread on publish).
    """

    def __init__(self, topics: list[str], now: float) -> None:
        self._ours: dict[str, deque[bytes]] = {t: deque(maxlen=REMEMBERED) for t in topics}
        self._echoed: dict[str, bool] = dict.fromkeys(topics, False)
        self._pending: set[str] = set()
        self._pace = TokenBucket(1.0 / CORRECTION_EVERY_S, CORRECTION_BURST, now)
        self.corrections = 0

    def connected(self) -> None:
        """A new session: its birth republishes everything, nothing was echoed yet."""
        for topic in self._echoed:
            self._echoed[topic] = False
        self._pending.clear()

    def published(self, topic: str, payload: bytes) -> None:
        """Before handing a retained payload to paho (its echo may come back at once)."""
        if topic in self._ours:
            self._ours[topic].append(_digest(payload))

    def received(self, topic: str, payload: bytes) -> bool:
        """A message on one of our topics; True when it must be overruled."""
        ours = self._ours.get(topic)
        if ours is None:
            return False
        if _digest(payload) in ours:
            self._echoed[topic] = True
            return False
        if not self._echoed[topic] or topic in self._pending:
            return False
        self._pending.add(topic)
        log.warning(
            "retained message on this device's topic is not its current one; republishing",
            topic=topic.rsplit("/", 1)[-1],
        )
        return True

    def due(self, now: float) -> set[str]:
        """The topics to republish now (each taken out of pending)."""
        if not self._pending or not self._pace.take(now):
            return set()
        due, self._pending = self._pending, set()
        self.corrections += 1
        return due

    def wait_s(self, now: float) -> float | None:
        """Seconds until `due` would return something (None: nothing pending)."""
        if not self._pending:
            return None
        return self._pace.wait_s(now)
