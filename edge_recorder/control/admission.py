"""Who the control socket serves when many clients connect: fair, bounded, never stuck.

Why: the socket is how a technician (`edge-recorder ctl`), the demo and the tests talk to
the daemon. With a plain first-come limit, eight clients that keep polling `status` held every
place and `ctl` only ever got "busy"; a storm of connections made `ctl` report the daemon as
not running. The rules here, applied per connection at accept time:

- **slots** (`MAX_CLIENTS`): a connection in a slot may send request after request;
- a connection that has been **idle** (no request in flight) for `EVICT_IDLE_AFTER_S` gives
  its slot to a newcomer: it is closed between requests, so nothing it asked is lost half-done
  (a connection closed without a reply had its request not executed);
- when every slot is taken and none is idle, a newcomer gets one of `OVERFLOW_CLIENTS`
  **one-shot** places: exactly one request answered, then closed. `ctl` sends one request per
  connection, so it is served within a bounded time however long the slot holders stay;
  `status` costs microseconds and the other commands are bounded by the handler timeout;
- past that, a **busy** reply, and `ctl` retries briefly before it says "daemon busy";
- each connection is **rate-limited** (a token bucket): a client asking faster waits for its
  next token before its next request is read, so no client can monopolise the loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

Place = Literal["slot", "overflow", "busy"]


@dataclass
class ControlStats:
    """Counters of what the socket did, for tests, `status` debugging and the log."""

    served: int = 0  # requests answered
    busy: int = 0  # connections refused: every slot and one-shot place taken
    departed: int = 0  # replies the client was no longer there to read
    evicted: int = 0  # idle slot holders closed to make room for a newcomer
    rate_limited: int = 0  # requests held back by the per-connection rate


class TokenBucket:
    """`rate` requests a second on average, up to `burst` at once."""

    def __init__(self, rate: float, burst: int, clock: Callable[[], float]) -> None:
        self._rate = rate
        self._burst = float(burst)
        self._tokens = float(burst)
        self._clock = clock
        self._at = clock()

    def take(self) -> float:
        """Take one token; returns how long to wait first (0.0: go ahead now)."""
        now = self._clock()
        self._tokens = min(self._burst, self._tokens + (now - self._at) * self._rate)
        self._at = now
        self._tokens -= 1.0
        return 0.0 if self._tokens >= 0 else -self._tokens / self._rate


@dataclass(eq=False)
class Client:
    """One connection the server is serving."""

    task: asyncio.Task[None]
    idle_since: float  # loop time it began waiting for its next request
    place: Place = "slot"
    in_flight: bool = False  # a request is being answered: never evicted then
    served: int = 0


@dataclass
class Admission:
    """The slot book: which connections hold a slot, which are one-shot, who may be evicted."""

    clock: Callable[[], float]
    stats: ControlStats = field(default_factory=ControlStats)
    clients: dict[asyncio.Task[None], Client] = field(default_factory=dict)

    def admit(
        self, task: asyncio.Task[None], slots: int, overflow: int, evict_idle_after_s: float
    ) -> Client | None:
        """A place for a new connection, evicting an idle slot holder if that makes one;
        None: busy."""
        in_slots = [c for c in self.clients.values() if c.place == "slot"]
        place: Place = "busy"
        if len(in_slots) < slots or self._evict_idle(in_slots, evict_idle_after_s):
            place = "slot"
        elif sum(1 for c in self.clients.values() if c.place == "overflow") < overflow:
            place = "overflow"
        if place == "busy":
            self.stats.busy += 1
            return None
        client = Client(task, self.clock(), place)
        self.clients[task] = client
        return client

    def release(self, client: Client) -> None:
        self.clients.pop(client.task, None)

    def _evict_idle(self, in_slots: list[Client], after_s: float) -> bool:
        """Close the longest-idle slot holder when it has been idle `after_s`; True if so."""
        now = self.clock()
        idle = [c for c in in_slots if not c.in_flight and now - c.idle_since >= after_s]
        if not idle:
            return False
        victim = min(idle, key=lambda c: c.idle_since)
        victim.task.cancel()  # it is waiting for a request line: nothing is cut half-way
        self.release(victim)
        self.stats.evicted += 1
        return True
