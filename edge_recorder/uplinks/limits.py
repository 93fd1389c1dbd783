"""How much the device reads from a service: named caps, and the helpers that enforce them.

A Pi has a few hundred MB to spare. A broken or hostile endpoint (a captive portal, a proxy
serving a file, a misrouted request) answering hundreds of MB would otherwise be buffered
whole, then decoded and parsed (measured: a 300 MB token answer took the daemon to 1.4 GB).
So every body and message the uplinks read is capped, and an answer over its cap becomes a
retryable `UplinkError` (kind PROTOCOL: the service answered something we will not parse),
which the delivery engine backs off on and reports as `last_error` like any service failure.

The caps are per kind of answer, each several times what a healthy service sends:
- a token answer is a JWT and a few fields (2-8 KB in practice): 64 KiB;
- JSON answers of AAS and Dice (session ids, status, acknowledgements): 1 MiB;
- Corti answers may carry a whole transcript (a 2-hour visit: ~18k words in per-segment JSON
  with timings, 2-4 MB) or a generated document (tens of KB): 8 MiB;
- error answers are only read for their first `ERROR_BODY_MAX_BYTES`: the status decides the
  kind and only a short snippet of the body ever reaches a message, so a huge error page is
  truncated, not an error of its own;
- messages on a stream (gRPC, WebSocket, AWS event stream) are acks, configuration and
  transcript events of a few KB: 1 MiB; Dice's final note message, which may repeat the
  whole transcript, gets 8 MiB.
"""

from __future__ import annotations

import json
from typing import Any

import aiohttp

from edge_recorder.uplinks.base import ErrorKind, Transport, UplinkError

KIB = 1024
MIB = 1024 * KIB

TOKEN_ANSWER_MAX_BYTES = 64 * KIB
JSON_ANSWER_MAX_BYTES = 1 * MIB
CORTI_ANSWER_MAX_BYTES = 8 * MIB
ERROR_BODY_MAX_BYTES = 64 * KIB
PROBE_BODY_MAX_BYTES = 4 * KIB  # a reachability probe needs the status line only
STREAM_MESSAGE_MAX_BYTES = 1 * MIB  # gRPC, AAS and Corti WebSocket, AWS event stream
DICE_MESSAGE_MAX_BYTES = 8 * MIB

_READ_PIECE = 64 * KIB


def human_size(n_bytes: int) -> str:
    """`1 MiB`, `64 KiB`, `300.5 MiB`, `300 B`: caps and sizes as an operator reads them."""
    for unit, size in (("MiB", MIB), ("KiB", KIB)):
        if n_bytes >= size:
            value = n_bytes / size
            return f"{value:.0f} {unit}" if value.is_integer() else f"{value:.1f} {unit}"
    return f"{n_bytes} B"


def too_large(
    what: str,  # the answer or message, e.g. "the token endpoint's answer"
    cap: int,
    transport: Transport,
    *,
    declared: int | None = None,
    status: int | str | None = None,
) -> UplinkError:
    """The retryable error of an answer over its cap (the answer itself is discarded)."""
    size = f" (it declared {human_size(declared)})" if declared is not None else ""
    return UplinkError(
        ErrorKind.PROTOCOL,
        f"{what} is larger than {human_size(cap)}, the device's limit{size}: discarded",
        transport=transport,
        status=status,
        retryable=True,
    )


async def read_capped(
    resp: aiohttp.ClientResponse, cap: int, *, what: str, transport: Transport
) -> bytes:
    """The whole body of `resp`, or `too_large` once it exceeds `cap` bytes.

    A `Content-Length` over the cap fails before reading anything; otherwise at most `cap + 1`
    bytes are read, so memory stays bounded whatever the server sends (chunked or not)."""
    declared = resp.content_length
    if declared is not None and declared > cap:
        raise too_large(what, cap, transport, declared=declared, status=resp.status)
    body = bytearray()
    while True:
        piece = await resp.content.read(min(_READ_PIECE, cap + 1 - len(body)))
        if not piece:
            return bytes(body)
        body += piece
        if len(body) > cap:
            raise too_large(what, cap, transport, status=resp.status)


async def read_prefix(resp: aiohttp.ClientResponse, limit: int = ERROR_BODY_MAX_BYTES) -> bytes:
    """At most the first `limit` bytes of the body (an error page, a probe): the rest is left
    unread and the connection is dropped instead of reused when the response is released."""
    body = bytearray()
    while len(body) < limit:
        piece = await resp.content.read(min(_READ_PIECE, limit - len(body)))
        if not piece:
            break
        body += piece
    return bytes(body)


def body_text(raw: bytes) -> str:
    """A body as text for messages: UTF-8, undecodable bytes replaced (never an exception)."""
    return raw.decode("utf-8", errors="replace")


class NotJson:
    """What `parse_json` returns for a body that is not JSON (JSON's `null` is None)."""

    def __init__(self, reason: str) -> None:
        self.reason = reason


def parse_json(raw: bytes | str) -> Any:
    """The JSON document in `raw`, or a `NotJson` saying why not: never raises.

    Covers bytes that are not UTF-8 text, text that is not JSON, and nesting deep enough to
    exhaust the parser's recursion (RecursionError is not a ValueError)."""
    if isinstance(raw, bytes):
        try:
            raw = raw.decode("utf-8")
        except UnicodeDecodeError:
            return NotJson("not UTF-8 text")
    try:
        return json.loads(raw)
    except ValueError:
        return NotJson("not JSON")
    except RecursionError:
        return NotJson("JSON nested too deeply")


def ws_too_large(msg: aiohttp.WSMessage, cap: int, what: str) -> UplinkError | None:
    """The `too_large` error when aiohttp refused a WebSocket message over `max_msg_size`
    (it then closes the socket with 1009 and hands over an ERROR message), else None."""
    if msg.type != aiohttp.WSMsgType.ERROR:
        return None
    error = msg.data
    if (
        isinstance(error, aiohttp.WebSocketError)
        and error.code == aiohttp.WSCloseCode.MESSAGE_TOO_BIG
    ):
        return too_large(what, cap, "websocket")
    return None
