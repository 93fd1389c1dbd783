"""Corti failures as `UplinkError`s: RFC 9457 problem bodies and connection failures.

Corti answers errors as `{requestid, status, type, detail, validationErrors?}` [doc]. The kind
comes from the HTTP status (`kind_for_http_status`); the message is the server's `detail` (plus
validation errors and the request id, so support can trace it), never a token or audio.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import aiohttp

from edge_recorder.uplinks.base import (
    ErrorKind,
    Transport,
    UplinkError,
    kind_for_http_status,
    retry_after_s,
)
from edge_recorder.uplinks.limits import parse_json


def problem_message(status: int, text: str) -> str:
    """The operator-facing words of an error body (RFC 9457, or whatever came)."""
    body: Any = parse_json(text) if text.strip() else None
    if not isinstance(body, dict):
        snippet = " ".join(text.split())[:300]
        return snippet or f"HTTP {status}"
    parts = []
    detail = body.get("detail") or body.get("title") or body.get("message")
    if isinstance(detail, str) and detail:
        parts.append(detail)
    errors = body.get("validationErrors")
    if isinstance(errors, list):
        for item in errors[:5]:
            if isinstance(item, dict):
                where = item.get("key") or item.get("field") or item.get("path") or ""
                what = item.get("message") or item.get("detail") or ""
                parts.append(f"{where}: {what}".strip(": "))
            elif isinstance(item, str):
                parts.append(item)
    if not parts and isinstance(body.get("type"), str):
        parts.append(body["type"])
    request_id = body.get("requestid") or body.get("requestId")
    message = "; ".join(parts) or f"HTTP {status}"
    if isinstance(request_id, str) and request_id:
        message += f" (requestid {request_id})"
    return message[:500]


def error_for_response(
    status: int,
    text: str,
    headers: Mapping[str, str] | None = None,
    transport: Transport = "rest",
    what: str = "",
) -> UplinkError:
    kind = ErrorKind.INVALID if status == 413 else kind_for_http_status(status)
    message = problem_message(status, text)
    return UplinkError(
        kind,
        f"{what}: {message}" if what else message,
        transport=transport,
        status=status,
        retry_after_s=retry_after_s(headers),
    )


def network_error(exc: BaseException, what: str, transport: Transport = "rest") -> UplinkError:
    """Connection-level failures are retryable: the network or the host is down."""
    if isinstance(exc, aiohttp.ClientSSLError):
        text = f"TLS failure on {what}: {exc}"
    elif isinstance(exc, TimeoutError):
        text = f"{what} timed out"
    else:
        text = f"{what} failed: {type(exc).__name__}"
    return UplinkError(ErrorKind.UNAVAILABLE, text, transport=transport, retryable=True)


def protocol_error(what: str, transport: Transport = "rest") -> UplinkError:
    return UplinkError(ErrorKind.PROTOCOL, what, transport=transport)
