"""From an MQTT command message to the daemon's CommandHandler and back to a response.

Called on paho's network thread; the handler runs on the daemon's asyncio loop, reached with
`run_coroutine_threadsafe`, so nothing here waits for a command to finish. Every accepted
command gets exactly one answer (result, refusal, handler error or timeout), and a QoS 1
redelivery of the same request_id gets the same answer instead of a second execution.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable

from edge_recorder.fleet import payloads
from edge_recorder.fleet.commands import Accepted, RecentResponses, Rejected, parse_command
from edge_recorder.fleet.outbox import Message, Outbox
from edge_recorder.fleet.topics import RESPONSE_LEAF, DeviceTopics
from edge_recorder.status import CommandHandler
from edge_recorder.support.logs import get_logger

log = get_logger(__name__)


class CommandDispatcher:
    def __init__(
        self,
        topics: DeviceTopics,
        handler: CommandHandler,
        outbox: Outbox,
        *,
        max_bytes: int,
        timeout_s: float,
        max_pending: int,
        loop: Callable[[], asyncio.AbstractEventLoop | None],
        secrets: Callable[[], list[str]],
        on_done: Callable[[], None],
    ) -> None:
        self._topics = topics
        self._handler = handler
        self._outbox = outbox
        self._max_bytes = max_bytes
        self._timeout_s = timeout_s
        self._max_pending = max_pending
        self._loop = loop
        self._secrets = secrets
        self._on_done = on_done
        self._recent = RecentResponses()
        self._lock = threading.Lock()
        self._pending = 0
        self.rejected = 0

    def receive(self, name: str, payload: bytes, retained: bool) -> None:
        """Judge one message from `<base>/cmd/<name>` (paho's thread; never raises on input)."""
        verdict = parse_command(name, payload, retained=retained, max_bytes=self._max_bytes)
        if verdict is None:
            if retained and name != RESPONSE_LEAF:
                log.warning("retained mqtt command ignored", command=name[:64])
            return
        if isinstance(verdict, Rejected):
            self._reject(verdict)
            return
        with self._lock:
            new, earlier = self._recent.claim(verdict.command, verdict.request_id)
        if not new:
            if earlier is not None:
                self._outbox.put(Message(self._topics.response, earlier, False, "response"))
            return
        loop = self._loop()
        with self._lock:
            busy = self._pending >= self._max_pending
            if not busy:
                self._pending += 1
        if busy or loop is None or loop.is_closed():
            reason = "too many commands in progress" if busy else "daemon not running"
            if not busy:
                self._finished()
            self._reject(Rejected(verdict.request_id, verdict.command, "busy", reason))
            return
        log.info("mqtt command", command=verdict.command, request_id=verdict.request_id)
        work = self._execute(verdict)
        try:
            asyncio.run_coroutine_threadsafe(work, loop)
        except RuntimeError:  # the loop closed between the check and the hand-off
            work.close()
            self._finished()
            self._reject(Rejected(verdict.request_id, verdict.command, "busy", "shutting down"))

    def _finished(self) -> None:
        with self._lock:
            self._pending -= 1

    def _reject(self, verdict: Rejected) -> None:
        with self._lock:
            self.rejected += 1
        log.warning(
            "mqtt command rejected",
            command=verdict.command,
            code=verdict.code,
            reason=verdict.message,
            request_id=verdict.request_id,
        )
        self._respond(
            verdict.request_id,
            verdict.command,
            ok=False,
            error_code=verdict.code,
            error_message=verdict.message,
        )

    async def _execute(self, accepted: Accepted) -> None:
        """Runs on the daemon's loop; always answers, whatever the handler does."""
        try:
            result = await asyncio.wait_for(
                self._handler.execute(accepted.request), self._timeout_s
            )
        except TimeoutError:
            message = f"no result within {self._timeout_s:g} s"
            self._respond(
                accepted.request_id,
                accepted.command,
                ok=False,
                error_code="timeout",
                error_message=message,
            )
        except Exception as exc:
            log.error(
                "mqtt command failed", command=accepted.command, error_type=type(exc).__name__
            )
            self._respond(
                accepted.request_id,
                accepted.command,
                ok=False,
                error_code="handler_error",
                error_message=type(exc).__name__,
            )
        else:
            secrets = self._secrets()
            clean, _ = payloads.sanitize_details(result.data, secrets)
            self._respond(
                accepted.request_id,
                accepted.command,
                ok=result.ok,
                state=result.state,
                error_code="rejected",
                error_message=result.error,
                error_reason=result.code,
                result=clean,
                secrets=secrets,
            )
        finally:
            self._finished()
            self._on_done()

    def _respond(
        self,
        request_id: str | None,
        command: str | None,
        *,
        ok: bool,
        state: str | None = None,
        error_code: str | None = None,
        error_message: str | None = None,
        error_reason: str | None = None,
        result: dict[str, payloads.Scalar] | None = None,
        secrets: list[str] | None = None,
    ) -> None:
        body = payloads.response_payload(
            device_id=self._topics.device_id,
            request_id=request_id,
            command=command,
            ok=ok,
            at=payloads.now(),
            state=state,
            error_code=error_code,
            error_message=error_message,
            error_reason=error_reason,
            result=result,
            secrets=secrets or [],
        )
        data = payloads.encode(body)
        if request_id is not None and command is not None:
            with self._lock:
                self._recent.answer(command, request_id, data)
        self._outbox.put(Message(self._topics.response, data, False, "response"))
