"""Commands arriving over MQTT: an allow list, pydantic-validated bodies, never a crash.

`parse_command` turns one received message into an `Accepted` request for the daemon, a
`Rejected` answer (with a reason code a dashboard can act on), or None when the message must be
ignored without an answer (a retained command, or our own response echoed back). Error text
names fields and rules, never the values received, because a body may carry EHR context.

Bodies are read by `decode_body`, which cannot raise on any input, and held to what a command
can need: UTF-8 without lone surrogates, an object, no NaN/Infinity, numbers of at most 64
characters, at most 32 levels deep. Python's `json` alone raises `ValueError` on a 5,000-digit
integer (the int-from-string limit) and `RecursionError` on deep nesting; both used to escape
the parser and leave the sender without an answer.

Retained commands are never executed, because a retained `start` would fire again on every
reconnect. Judging "retained" by the flag on the message as received is not enough: a broker
forwards a retained publish to clients already subscribed with retain=0 (MQTT 3.1.1 §3.3.1.3,
MQTT 5 §3.3.1.3), so a retained `start` published while the device listened used to run.
The reporter therefore subscribes to its commands with MQTT 5's "retain as published"
option: every command the publisher marked retained arrives with retain=1, whenever it was
published, and is ignored (counted as `commands_ignored`). We did not make an `issued_at`
with a bounded age mandatory instead: Home Assistant buttons send a fixed body, and a Pi has
no real-time clock, so a device that boots before NTP has synced would refuse every command
(including an EHR's `start`) for as long as its clock is wrong. On a broker that only speaks
MQTT 3.1.1 (the fallback) the publish flag cannot be seen, and a retained command published
while the device is connected still runs once; its later replays (retain=1) are ignored.
"""

from __future__ import annotations

import json
import math
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from edge_recorder.fleet.limits import STATE_CHANGING
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
    "rate_limited",
]
MAX_DEPTH = 32  # containers inside containers; a command needs 4 (start's context.data: any)
MAX_NUMBER_CHARS = 64  # longer numbers are refused, not handed to int() (its 4,300 limit)


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


class BodyError(ValueError):
    """A body that is not a JSON object we are willing to read (message: why, no values)."""


class _OutOfRange:
    """Stands in for a number we will not convert (too long, NaN or infinite)."""


_OUT_OF_RANGE = _OutOfRange()


def _int(text: str) -> object:
    return _OUT_OF_RANGE if len(text) > MAX_NUMBER_CHARS else int(text)


def _float(text: str) -> object:
    if len(text) > MAX_NUMBER_CHARS:
        return _OUT_OF_RANGE
    value = float(text)
    return value if math.isfinite(value) else _OUT_OF_RANGE


def _constant(_text: str) -> object:  # NaN, Infinity, -Infinity: not JSON
    return _OUT_OF_RANGE


def _problem(body: Any) -> str | None:
    """Why a decoded body is unacceptable (iterative: no recursion on hostile depth)."""
    stack: list[tuple[Any, int]] = [(body, 1)]
    while stack:
        value, depth = stack.pop()
        if value is _OUT_OF_RANGE:
            return f"body has a number that is not finite or longer than {MAX_NUMBER_CHARS}"
        if isinstance(value, str) and not _is_unicode(value):
            return "body has a string that is not valid Unicode (a lone surrogate)"
        if isinstance(value, dict | list):
            if depth > MAX_DEPTH:
                return f"body nests deeper than {MAX_DEPTH} levels"
            items = [*value, *value.values()] if isinstance(value, dict) else value
            stack.extend((item, depth + 1) for item in items)
    return None


def _is_unicode(text: str) -> bool:
    """JSON's \\uXXXX escapes can make strings UTF-8 cannot encode; they would fail much
    later, in the spool or an uplink, not here."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def decode_body(payload: bytes) -> Any:
    """The JSON value of a body, or `BodyError`; never any other exception."""
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError:
        raise BodyError("body is not UTF-8 JSON") from None
    try:
        return json.loads(text, parse_int=_int, parse_float=_float, parse_constant=_constant)
    except RecursionError:
        raise BodyError(f"body nests deeper than {MAX_DEPTH} levels") from None
    except ValueError:  # JSONDecodeError, and anything a hook could still raise
        raise BodyError("body is not UTF-8 JSON") from None


def request_id_of(payload: bytes) -> str | None:
    """The request_id of a body, when it has a well-formed one (for refusals)."""
    try:
        return _request_id_hint(decode_body(payload))
    except BodyError:
        return None


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
        body = decode_body(payload)
    except BodyError as exc:
        return Rejected(None, command, "invalid_json", str(exc))
    hint = _request_id_hint(body)
    problem = _problem(body)
    if problem is not None:
        return Rejected(hint, command, "invalid_json", problem)
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
DEDUPLICATED = STATE_CHANGING
DEDUP_TTL_S = 300.0


class RecentResponses:
    """Answers by request_id for `ttl_s`: a QoS 1 redelivery or a replay of a state-changing
    command gets the same answer, not a second execution (a duplicated `start` must not start
    twice).

    Every id is kept for the whole `ttl_s`, whatever else arrives meanwhile: the caller's rate
    limit admits at most `capacity` state-changing commands in any such window
    (`CommandLimits.most_state_changes_in`), so the memory is bounded without ever forgetting
    an id early. Should the capacity still be reached (a caller without that limit), the
    oldest id goes and `evicted` counts it.
    """

    def __init__(self, capacity: int, ttl_s: float = DEDUP_TTL_S) -> None:
        self._capacity = max(1, capacity)
        self._ttl_s = ttl_s
        # insertion order is claim order, so the front is always the oldest
        self._items: OrderedDict[tuple[str, str], tuple[float, bytes | None]] = OrderedDict()
        self.evicted = 0

    def __len__(self) -> int:
        return len(self._items)

    def _expire(self, now: float) -> None:
        while self._items:
            key, (at, _answer) = next(iter(self._items.items()))
            if now - at < self._ttl_s:
                return
            del self._items[key]

    def claim(self, command: str, request_id: str, now: float) -> tuple[bool, bytes | None]:
        """(new, earlier answer): new=True reserves the id for this execution."""
        if command not in DEDUPLICATED:
            return True, None
        self._expire(now)
        key = (command, request_id)
        seen = self._items.get(key)
        if seen is not None:
            return False, seen[1]
        while len(self._items) >= self._capacity:
            self._items.popitem(last=False)
            self.evicted += 1
        self._items[key] = (now, None)
        return True, None

    def answer(self, command: str, request_id: str, payload: bytes) -> None:
        key = (command, request_id)
        if key in self._items:
            self._items[key] = (self._items[key][0], payload)
