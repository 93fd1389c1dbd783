"""The hand-off between the daemon and the MQTT thread: bounded, non-blocking, drop-oldest.

Callers on the asyncio loop (or the audio path) only take a lock for a deque append. Events
wait here while the broker is away; when the bound is hit the OLDEST event goes and a counter
says so in the next status, because a fresh alarm matters more than a stale one and a full
queue must never block the caller. The control lane (command answers, discovery) has its own
bound; an answer dropped there is counted too (`responses_dropped`, reported in the status as
part of `replies_dropped`). The command rate limit keeps that lane far below its bound.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass
from typing import Literal

Kind = Literal["event", "response", "discovery"]


@dataclass(frozen=True)
class Message:
    topic: str
    payload: bytes
    retain: bool
    kind: Kind


class Outbox:
    """Two lanes: control messages (responses, discovery) first, then events."""

    def __init__(self, event_max: int, control_max: int = 256) -> None:
        self.wakeup = threading.Condition()
        self._events: deque[Message] = deque()
        self._control: deque[Message] = deque()
        self._event_max = event_max
        self._control_max = control_max
        self.events_dropped = 0
        self.control_dropped = 0
        self.responses_dropped = 0  # command answers among control_dropped
        # Set by the consumer while a new message would be work for it (connected, room in
        # flight); otherwise a put does not wake it, which keeps the caller's cost flat.
        self.listening = True

    def put(self, message: Message) -> None:
        """Queue without ever blocking; on overflow the oldest of the lane is dropped."""
        with self.wakeup:
            if message.kind == "event":
                if len(self._events) >= self._event_max:
                    self._events.popleft()
                    self.events_dropped += 1
                self._events.append(message)
            else:
                if len(self._control) >= self._control_max:
                    self._dropped_control(self._control.popleft())
                self._control.append(message)
            if self.listening:
                self.wakeup.notify_all()

    def _dropped_control(self, message: Message) -> None:
        """Caller holds the lock. Counted for the status: an answer is never lost silently."""
        self.control_dropped += 1
        if message.kind == "response":
            self.responses_dropped += 1

    def take(self, limit: int) -> list[Message]:
        """Up to `limit` messages, control lane first, in queue order."""
        out: list[Message] = []
        with self.wakeup:
            for lane in (self._control, self._events):
                while lane and len(out) < limit:
                    out.append(lane.popleft())
        return out

    def push_back(self, messages: list[Message]) -> None:
        """Return messages paho refused (not connected any more) to the front of their lanes."""
        with self.wakeup:
            for message in reversed(messages):
                lane = self._events if message.kind == "event" else self._control
                lane.appendleft(message)
            while len(self._events) > self._event_max:
                self._events.popleft()
                self.events_dropped += 1
            while len(self._control) > self._control_max:
                self._dropped_control(self._control.popleft())

    def __len__(self) -> int:
        with self.wakeup:
            return len(self._events) + len(self._control)

    @property
    def events_queued(self) -> int:
        with self.wakeup:
            return len(self._events)

    def notify(self) -> None:
        with self.wakeup:
            self.wakeup.notify_all()
