"""From an MQTT command message to the daemon's CommandHandler and back to a response.

Called on paho's network thread; the handler runs on the daemon's asyncio loop, reached with
`run_coroutine_threadsafe`, so nothing here waits for a command to finish. Every accepted
command gets exactly one answer (result, refusal, handler error or timeout), and a QoS 1
redelivery or replay of the same request_id within 5 minutes gets the same answer instead of
a second execution.

Nothing is dropped silently: each message is executed, refused with an answer, refused by
the rate limit (`limited`, see limits.py; answered `rate_limited` while the refusal budget
lasts, else counted in `replies_dropped`) or, when retained, ignored (`ignored`). Commands
other than start/stop/pause/resume may not take the last `STATE_RESERVED` of the
`max_pending` slots, so a flood of cheap commands cannot leave a real `start` refused `busy`.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable

from edge_recorder.fleet import payloads
from edge_recorder.fleet.commands import (
    ALLOWED_COMMANDS,
    DEDUP_TTL_S,
    DEDUPLICATED,
    Accepted,
    RecentResponses,
    Rejected,
    parse_command,
    request_id_of,
)
from edge_recorder.fleet.limits import CommandLimits
from edge_recorder.fleet.outbox import Message, Outbox
from edge_recorder.fleet.topics import RESPONSE_LEAF, DeviceTopics
from edge_recorder.status import CommandHandler
from edge_recorder.support.logs import get_logger

log = get_logger(__name__)
STATE_RESERVED = 4  # slots of max_pending only start/stop/pause/resume may use


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
        rate_per_s: float,
        burst: int,
        loop: Callable[[], asyncio.AbstractEventLoop | None],
        secrets: Callable[[], payloads.Secrets],
        on_done: Callable[[], None],
        clock: Callable[[], float] = time.monotonic,
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
        self._clock = clock
        self._limits = CommandLimits(rate_per_s, burst, clock())
        self._recent = RecentResponses(self._limits.most_state_changes_in(DEDUP_TTL_S))
        self._lock = threading.Lock()
        self._pending = 0
        self._over_limit = 0  # refused since the last admitted command (for the log)
        self.rejected = 0
        self.limited = 0
        self.ignored = 0
        self.replies_dropped = 0

    def receive(self, name: str, payload: bytes, retained: bool) -> None:
        """Judge one message from `<base>/cmd/<name>` (paho's thread; never raises)."""
        if name == RESPONSE_LEAF:  # our own answer, echoed back (MQTT 3.1.1 has no no-local)
            return
        command = name if name in ALLOWED_COMMANDS else None
        try:
            self._receive(name, payload, retained)
        except Exception as exc:  # a bug here must still answer, and never kill paho's thread
            log.error("mqtt command handling failed", error_type=type(exc).__name__)
            self._reject(Rejected(None, command, "invalid_request", "command could not be read"))

    def _receive(self, name: str, payload: bytes, retained: bool) -> None:
        now = self._clock()
        if retained:
            with self._lock:
                self.ignored += 1
                count = self.ignored
            if count & (count - 1) == 0:  # 1st, 2nd, 4th, 8th...: a flood cannot fill the log
                log.warning("retained mqtt command ignored", command=name[:64], ignored=count)
            return
        with self._lock:
            admitted = self._limits.admit(name, now)
            answer = True
            if admitted:
                streak, self._over_limit = self._over_limit, 0
            else:
                self.limited += 1
                self._over_limit += 1
                streak = self._over_limit
                answer = self._limits.may_refuse(now)
                if not answer:
                    self.replies_dropped += 1
        if not admitted:
            if streak == 1:
                log.warning("mqtt commands over the rate limit; refusing", command=name[:64])
            if answer:
                self._refuse_over_limit(name, payload)
            return
        if streak:
            log.info("mqtt commands back under the rate limit", refused=streak)
        verdict = parse_command(name, payload, retained=False, max_bytes=self._max_bytes)
        if verdict is None:
            return
        if isinstance(verdict, Rejected):
            self._reject(verdict)
            return
        with self._lock:
            new, earlier = self._recent.claim(verdict.command, verdict.request_id, now)
        if not new:
            if earlier is not None:
                self._outbox.put(Message(self._topics.response, earlier, False, "response"))
            return
        loop = self._loop()
        limit = self._max_pending
        if verdict.command not in DEDUPLICATED:
            limit = max(1, self._max_pending - STATE_RESERVED)
        with self._lock:
            busy = self._pending >= limit
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

    def _refuse_over_limit(self, name: str, payload: bytes) -> None:
        """The `rate_limited` answer; the body is read only for its request_id."""
        command = name if name in ALLOWED_COMMANDS else None
        request_id = request_id_of(payload) if len(payload) <= self._max_bytes else None
        message = f"over {self._limits.rate:g} commands/s; retry later"
        self._respond(
            request_id, command, ok=False, error_code="rate_limited", error_message=message
        )

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
        secrets: payloads.Secrets | None = None,
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
            secrets=secrets or payloads.NO_SECRETS,
        )
        data = payloads.encode(body)
        if request_id is not None and command is not None:
            with self._lock:
                self._recent.answer(command, request_id, data)
        self._outbox.put(Message(self._topics.response, data, False, "response"))
