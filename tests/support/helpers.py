"""Waiting in tests without sleeping as synchronisation: poll a condition with a deadline."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable


def poll_until(condition: Callable[[], bool], timeout: float = 10.0, what: str = "") -> None:
    """Return as soon as `condition()` holds; fail with `what` when the deadline passes."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or condition}")
        time.sleep(0.005)


async def async_poll_until(
    condition: Callable[[], bool], timeout: float = 10.0, what: str = ""
) -> None:
    """The asyncio twin of `poll_until`, yielding to the loop between checks."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or condition}")
        await asyncio.sleep(0.005)


async def wait_for(
    predicate: Callable[[], Awaitable[bool]], timeout: float = 20.0, what: str = ""
) -> None:
    """Like `async_poll_until` for a condition that must itself be awaited (an HTTP query)."""
    deadline = time.monotonic() + timeout
    while not await predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.05)
