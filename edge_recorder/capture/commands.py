"""The loop's commands to the capture thread: open a recording, close it, or a barrier.

The asyncio loop never waits on the capture thread: it queues a command and gets a
`concurrent.futures.Future` back; the thread runs the queued commands in order between chunks
(`run_pending`) and answers each future with the result or the exception. At exit, closes
still count as done (the thread sealed the writer) and opens are refused (`drain`).
"""

from __future__ import annotations

import queue
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Open:
    correlation_id: str
    seq: int
    guid: str


Work = Open | str | None  # open a recording, close it (the reason), or a barrier


@dataclass
class Command:
    what: Work
    done: Future[Any] = field(default_factory=Future)


class Commands:
    """A queue of commands, put from any thread, run by the capture thread."""

    def __init__(self) -> None:
        self._queue: queue.SimpleQueue[Command] = queue.SimpleQueue()

    def put(self, what: Work) -> Future[Any]:
        command = Command(what)
        self._queue.put(command)
        return command.done

    def run_pending(self, execute: Callable[[Work], Any]) -> None:
        """Run every queued command in order, answering its future."""
        if self._queue.empty():  # the usual case, once per chunk: no queue.Empty raised
            return
        while True:
            try:
                command = self._queue.get_nowait()
            except queue.Empty:
                return
            try:
                command.done.set_result(execute(command.what))
            except Exception as exc:
                command.done.set_exception(exc)

    def drain(self) -> None:
        """At exit: closes still run (the writer must be sealed); opens are refused."""
        while True:
            try:
                command = self._queue.get_nowait()
            except queue.Empty:
                return
            if isinstance(command.what, Open):
                command.done.set_exception(RuntimeError("the audio worker has stopped"))
            else:
                command.done.set_result(None)
