"""Heartbeats: proof of progress that the systemd watchdog supervisor (`app.service`) checks.

Apart from the supervisor so a worker in a lower layer (the capture thread) can beat one
without importing the application.
"""

from __future__ import annotations

import time
from collections.abc import Callable

Clock = Callable[[], float]


class Heartbeat:
    """Proof of progress from one component: call `beat()` each time round its loop.

    Thread-safe without a lock: `beat()` stores one float, which is atomic in CPython.
    """

    def __init__(
        self,
        name: str,
        max_age_s: float,
        clock: Clock = time.monotonic,
        on_close: Callable[[Heartbeat], None] | None = None,
    ) -> None:
        if max_age_s <= 0:
            raise ValueError(f"heartbeat {name!r}: max_age_s must be > 0, got {max_age_s}")
        self.name = name
        self.max_age_s = max_age_s
        self._clock = clock
        self._last = clock()  # fresh at registration: a component gets one full period to start
        self._on_close = on_close

    def beat(self) -> None:
        self._last = self._clock()

    def age(self, now: float | None = None) -> float:
        return (self._clock() if now is None else now) - self._last

    def is_fresh(self, now: float | None = None) -> bool:
        return self.age(now) <= self.max_age_s

    def close(self) -> None:
        """The component stopped on purpose (e.g. capture ended): stop watching it."""
        if self._on_close is not None:
            self._on_close(self)
            self._on_close = None

    def __enter__(self) -> Heartbeat:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
