"""Operator commands: publish one request, wait for the device's answer with the same id.

Only harmless commands are offered (`identify` blinks/beeps, `spool_retry` retries uploads):
the dashboard must never start or stop a recording. Each request carries a fresh random
`request_id` (`dash-<hex>`); the reply arrives through ingest on the loop and resolves the
waiting future, so a reply to someone else's request (or a late one) is simply ignored.
"""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import Callable, Mapping

from edge_recorder.support.logs import get_logger

log = get_logger(__name__)

ALLOWED = ("identify", "spool_retry")
MAX_PENDING = 256  # concurrent requests in flight; more are refused as busy


class NotConnected(Exception):
    """The broker connection is down: the request could not be queued."""


class TooBusy(Exception):
    """Too many requests are waiting for answers."""


class Commands:
    """Sends commands through `publish(topic, payload) -> bool` and matches the replies."""

    def __init__(
        self,
        prefix: str,
        publish: Callable[[str, bytes], bool],
        *,
        timeout_s: float = 10.0,
    ) -> None:
        self.prefix = prefix
        self.timeout_s = timeout_s
        self._publish = publish
        self._pending: dict[str, tuple[str, asyncio.Future[dict[str, object]]]] = {}

    async def send(self, device_id: str, name: str, user: str) -> dict[str, object]:
        """`{"request_id","ok","response","error"}`; error "timeout" when no answer came.

        Raises ValueError for a command not in ALLOWED, NotConnected, TooBusy.
        """
        if name not in ALLOWED:
            raise ValueError(f"command {name!r} is not offered")
        if len(self._pending) >= MAX_PENDING:
            raise TooBusy
        request_id = f"dash-{secrets.token_hex(8)}"
        future: asyncio.Future[dict[str, object]] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = (device_id, future)
        try:
            topic = f"{self.prefix}/{device_id}/cmd/{name}"
            if not self._publish(topic, json.dumps({"request_id": request_id}).encode()):
                raise NotConnected
            log.info(
                "command sent", device_id=device_id, command=name, user=user, request_id=request_id
            )
            try:
                response = await asyncio.wait_for(future, self.timeout_s)
            except TimeoutError:
                return {"request_id": request_id, "ok": False, "response": None, "error": "timeout"}
        finally:
            self._pending.pop(request_id, None)
        ok = response.get("ok") is True
        return {
            "request_id": request_id,
            "ok": ok,
            "response": response,
            "error": None if ok else _error_code(response),
        }

    def resolve(self, response: Mapping[str, object]) -> bool:
        """A schema-valid `cmd/response` body arrived (loop thread); True if it was awaited."""
        request_id = response.get("request_id")
        if not isinstance(request_id, str):
            return False
        entry = self._pending.get(request_id)
        if entry is None or entry[0] != response.get("device_id") or entry[1].done():
            return False  # not ours, or another device answering for it
        future = entry[1]
        future.set_result(dict(response))
        return True

    @property
    def pending(self) -> int:
        return len(self._pending)


def _error_code(response: Mapping[str, object]) -> str:
    error = response.get("error")
    if isinstance(error, Mapping):
        code = error.get("code")
        if isinstance(code, str):
            return code
    return "failed"
