"""Whether a device is online, judged by birth order: the one rule both fleet views follow (pure).

A device's `online` availability and its Last Will `offline` carry the birth_seq of their MQTT
session (fleet/birth.py), and its statuses carry it too. The rule, shared by `fleet watch`
(`watch.FleetView`) and the web dashboard (`dashboard.fleetstate`) so they never disagree:

- the highest birth_seq seen online wins: an `offline` older than it is the late will of an
  older session and is ignored (its reason too);
- any other `offline` is believed, and an `online` that arrives after an `offline` wins
  whatever the numbers: a device overrules a forged `offline` (even one claiming a higher
  birth_seq) by publishing its `online` again, and a re-imaged device starts again from 1;
- a status proves life unless the device was announced offline by a newer session's will;
- a bare `online` / `offline` text (a publisher that is not edge-recorder) decides alone until
  a JSON availability replaces it.

Staleness (an online device whose status is too old) is each view's own business: the watcher
and the dashboard judge it from different clocks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Presence = Literal["online", "offline", "stale", "unknown"]


def _seq(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


@dataclass(slots=True)
class PresenceRule:
    """One device's birth-order state, folded from its availability and status messages."""

    online_seq: int = 0
    offline_seq: int = 0
    offline_reason: str | None = None
    plain: str | None = None  # from a publisher that sends bare online/offline
    announced: str | None = None  # what the latest availability (or newer status) says

    def availability(self, state: str, birth_seq: object, reason: object) -> bool:
        """A JSON availability (state `online` or `offline`); False: a late will, ignored."""
        self.plain = None
        seq = _seq(birth_seq)
        stale = state == "offline" and seq is not None and seq < self.online_seq
        self._note(state, seq)
        if not stale:
            self.announced = state
            if state == "offline":
                self.offline_reason = reason if isinstance(reason, str) else None
        return not stale

    def status(self, birth_seq: object) -> None:
        """A status: its session is alive, unless a newer session's will says otherwise."""
        seq = _seq(birth_seq)
        self._note("online", seq)
        if self.announced != "offline" or (seq is not None and seq > self.offline_seq):
            self.announced = "online"

    def state(self) -> Presence:
        """online, offline or unknown (never stale: see the module docstring)."""
        if self.plain is not None:
            return "online" if self.plain == "online" else "offline"
        if self.announced is None:
            return "unknown"
        return "online" if self.announced == "online" else "offline"

    @property
    def birth_seq(self) -> int | None:
        """The newest session number seen (None: none yet)."""
        return max(self.online_seq, self.offline_seq) or None

    def _note(self, state: str, seq: int | None) -> None:
        if seq is None:
            return
        if state == "online":
            self.online_seq = max(self.online_seq, seq)
        else:
            self.offline_seq = max(self.offline_seq, seq)
