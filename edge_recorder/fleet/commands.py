"""Commands arriving over MQTT: an allow list, pydantic-validated bodies, never a crash.

`parse_command` turns one received message into an `Accepted` request for the daemon, a
`Rejected` answer (with a reason code a dashboard can act on), or None when the message must be
ignored without an answer (a retained replay, or our own response echoed back). Error text
names fields and rules, never the values received, because a body may carry EHR context.
"""

from __future__ import annotations

import json
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from edge_recorder.fleet.topics import RESPONSE_LEAF
from edge_recorder.status import CommandName, CommandRequest, StartContext

ALLOWED_COMMANDS: tuple[str, ...] = (
    "identify",
    "start",
    "stop",
    "pause",
    "resume",
    "reload",
    "ping",
    "spool_retry",
)
RequestId = str
REQUEST_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$"
RejectCode = Literal[
    "too_large",
    "invalid_json",
    "invalid_request",
    "unknown_command",
    "busy",
    "timeout",
    "handler_error",
    "rejected",
]


class CommandBody(BaseModel):
    """The body every command takes: a caller-chosen id echoed on the response."""

    model_config = ConfigDict(extra="forbid")

    request_id: str = Field(pattern=REQUEST_ID_PATTERN)


class StartBody(CommandBody):
    """`start` may bring EHR context; it goes to the daemon and is never echoed or logged."""

    context: StartContext | None = None


BODY_MODELS: dict[str, type[CommandBody]] = {name: CommandBody for name in ALLOWED_COMMANDS}
BODY_MODELS["start"] = StartBody


@dataclass(frozen=True)
class Accepted:
    request_id: str
    command: str
    request: CommandRequest


@dataclass(frozen=True)
class Rejected:
    request_id: str | None
    command: str | None
    code: RejectCode
    message: str


def _request_id_hint(body: Any) -> str | None:
    """The request_id from an otherwise invalid body, when it is itself well formed."""
    if isinstance(body, dict):
        try:
            return CommandBody.model_validate({"request_id": body.get("request_id")}).request_id
        except ValidationError:
            return None
    return None


def _describe(error: ValidationError) -> str:
    """Field locations and rule names only: values may be patient data."""
    parts = []
    for item in error.errors(include_url=False, include_input=False)[:5]:
        where = ".".join(str(p) for p in item["loc"]) or "body"
        parts.append(f"{where}: {item['type']}")
    return "; ".join(parts)


def parse_command(
    name: str, payload: bytes, *, retained: bool, max_bytes: int
) -> Accepted | Rejected | None:
    """Judge one message received on `<base>/cmd/<name>`."""
    if name == RESPONSE_LEAF or retained:
        return None
    command = name if name in ALLOWED_COMMANDS else None
    if len(payload) > max_bytes:
        size = f"body is {len(payload)} bytes; limit {max_bytes}"
        return Rejected(None, command, "too_large", size)
    try:
        body = json.loads(payload.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        return Rejected(None, command, "invalid_json", "body is not UTF-8 JSON")
    hint = _request_id_hint(body)
    if command is None:
        allowed = ", ".join(ALLOWED_COMMANDS)
        return Rejected(hint, name[:64], "unknown_command", f"allowed commands: {allowed}")
    if not isinstance(body, dict):
        return Rejected(None, command, "invalid_request", "body must be a JSON object")
    try:
        parsed = BODY_MODELS[command].model_validate(body)
    except ValidationError as exc:
        return Rejected(hint, command, "invalid_request", _describe(exc))
    context = parsed.context if isinstance(parsed, StartBody) else None
    cmd: CommandName = command  # type: ignore[assignment]  # allow list ⊂ CommandName
    return Accepted(parsed.request_id, command, CommandRequest(name=cmd, context=context))


# Commands whose repetition would change state; only these are de-duplicated by request_id.
# identify/ping/reload/spool_retry are harmless to repeat, and a Home Assistant button sends
# the same body (and request_id) on every press.
DEDUPLICATED = frozenset({"start", "stop", "pause", "resume"})


class RecentResponses:
    """Recent answers by request_id: a QoS 1 redelivery of a state-changing command gets the
    same answer, not a second execution (a duplicated `start` must not start twice)."""

    def __init__(self, size: int = 64, ttl_s: float = 300.0) -> None:
        self._size = size
        self._ttl_s = ttl_s
        self._items: OrderedDict[tuple[str, str], tuple[float, bytes | None]] = OrderedDict()

    def claim(self, command: str, request_id: str) -> tuple[bool, bytes | None]:
        """(new, earlier answer): new=True reserves the id for this execution."""
        if command not in DEDUPLICATED:
            return True, None
        now = time.monotonic()
        key = (command, request_id)
        seen = self._items.get(key)
        if seen is not None and now - seen[0] < self._ttl_s:
            return False, seen[1]
        self._items[key] = (now, None)
        self._items.move_to_end(key)
        while len(self._items) > self._size:
            self._items.popitem(last=False)
        return True, None

    def answer(self, command: str, request_id: str, payload: bytes) -> None:
        key = (command, request_id)
        if key in self._items:
            self._items[key] = (self._items[key][0], payload)
