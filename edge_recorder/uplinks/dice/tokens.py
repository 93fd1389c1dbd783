"""Dice server tokens: OAuth2 password grant, then the refresh token, then sign in again.

[doc] The sign-in is a form-encoded `grant_type=password, username, password` answering
`{access_token, refresh_token, token_type}`; tokens last about an hour and are renewed with the
refresh token, which revokes the old pair. So both tokens are replaced together (one
assignment of an immutable pair), and a refresh that fails for any reason but the network
falls back to a fresh sign-in. Implements `uplink.auth.TokenProvider`, so `call_with_token`
(one refresh and one retry after a 401) works as for AAS. Tokens and the password never reach
a log line or an exception message.
"""

from __future__ import annotations

import asyncio
import math
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from edge_recorder.support.credentials import SecretUnavailable
from edge_recorder.support.logs import get_logger
from edge_recorder.uplinks.auth import make_ssl_context, token_from_answer
from edge_recorder.uplinks.base import ErrorKind, UplinkError, kind_for_http_status
from edge_recorder.uplinks.limits import (
    TOKEN_ANSWER_MAX_BYTES,
    body_text,
    parse_json,
    read_capped,
    read_prefix,
)

log = get_logger(__name__)

DEFAULT_LIFETIME_S = 3600.0  # [doc] "user tokens last 1 hour"; used when no expires_in


@dataclass(frozen=True)
class TokenPair:
    """The access and refresh token issued together (replaced together)."""

    access: str
    refresh: str | None
    refresh_at: float  # monotonic: renew from here on
    expires_at: float  # monotonic


def refresh_deadline(now: float, lifetime_s: float, margin_s: float) -> float:
    """Renew `margin_s` before expiry, but never in the first half of a short life."""
    return now + max(lifetime_s - margin_s, lifetime_s / 2)


def lifetime_of(body: dict[str, Any]) -> float:
    """`expires_in` when it is a finite number of seconds (JSON allows NaN and Infinity: a NaN
    lifetime would sign in again on every call), else the documented hour."""
    value = body.get("expires_in")
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return DEFAULT_LIFETIME_S
    try:
        seconds = float(value)
    except (ValueError, OverflowError):
        return DEFAULT_LIFETIME_S
    if not math.isfinite(seconds) or (seconds <= 0 and not isinstance(value, str)):
        return DEFAULT_LIFETIME_S
    return max(seconds, 0.0)


def error_message(status: int, body: Any, text: str) -> str:
    """The issuer's reason: OAuth2 `error`, FastAPI `detail` (string or 422 list), or status."""
    if isinstance(body, dict):
        if isinstance(body.get("error"), str):
            desc = body.get("error_description")
            return f"{body['error']}: {desc}" if isinstance(desc, str) else str(body["error"])
        detail = body.get("detail")
        if isinstance(detail, str):
            return detail
        if isinstance(detail, list):
            parts = [
                f"{'.'.join(str(p) for p in d.get('loc', []))}: {d.get('msg', '')}"
                for d in detail
                if isinstance(d, dict)
            ]
            if parts:
                return "; ".join(parts)
    snippet = text.strip().splitlines()[0][:200] if text.strip() else ""
    return snippet or f"sign-in answered HTTP {status}"


class PasswordGrantTokens:
    """Cached token pair with single-flight renewal (refresh, else sign in)."""

    def __init__(
        self,
        token_url: str,
        username: str,
        read_password: Callable[[], str],
        *,
        refresh_url: str | None = None,
        refresh_margin_s: float = 60.0,
        ca_file: Path | None = None,
        timeout_s: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._token_url = token_url
        self._refresh_url = refresh_url or token_url
        self._username = username
        self._read_password = read_password
        self._margin = refresh_margin_s
        self._ssl: ssl.SSLContext | bool = (
            make_ssl_context(ca_file) if token_url.startswith("https://") else False
        )
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._clock = clock
        self._pair: TokenPair | None = None
        self._lock = asyncio.Lock()
        self._session: aiohttp.ClientSession | None = None
        self.sign_ins = 0  # how many password grants (tests, status)
        self.refreshes = 0  # how many refresh grants succeeded

    async def token(self) -> str:
        pair = self._pair
        if pair is not None and self._clock() < pair.refresh_at:
            return pair.access
        async with self._lock:
            pair = self._pair
            if pair is not None and self._clock() < pair.refresh_at:
                return pair.access
            return await self._renew()

    async def refresh(self, rejected: str | None = None) -> str:
        async with self._lock:
            pair = self._pair
            if pair is not None and pair.access != rejected and self._clock() < pair.refresh_at:
                return pair.access  # another task already replaced the rejected token
            return await self._renew()

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _renew(self) -> str:
        """Refresh if a refresh token is held, else (or when that is refused) sign in."""
        pair = self._pair
        if pair is not None and pair.refresh:
            try:
                new = await self._grant(
                    self._refresh_url,
                    {"grant_type": "refresh_token", "refresh_token": pair.refresh},
                )
            except UplinkError as err:
                if err.kind is ErrorKind.UNAVAILABLE:
                    raise
                log.info("dice token refresh refused; signing in again", status=err.status)
            else:
                self.refreshes += 1
                self._pair = new
                return new.access
        try:
            password = self._read_password()
        except SecretUnavailable as exc:
            raise UplinkError(ErrorKind.AUTH, str(exc), transport="auth", retryable=False) from None
        form = {"grant_type": "password", "username": self._username, "password": password}
        new = await self._grant(self._token_url, form)
        self.sign_ins += 1
        self._pair = new
        log.info("dice signed in", sign_ins=self.sign_ins)
        return new.access

    async def _grant(self, url: str, form: dict[str, str]) -> TokenPair:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        started = self._clock()
        try:
            async with self._session.post(
                url, data=form, ssl=self._ssl, headers={"Accept": "application/json"}
            ) as resp:
                status = resp.status
                if status == 200:
                    raw = await read_capped(
                        resp,
                        TOKEN_ANSWER_MAX_BYTES,
                        what="the dice sign-in answer",
                        transport="auth",
                    )
                else:  # only a snippet of a refusal is ever shown
                    raw = await read_prefix(resp)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise UplinkError(
                ErrorKind.UNAVAILABLE,
                f"dice sign-in unreachable: {type(exc).__name__}",
                transport="auth",
            ) from None
        parsed = parse_json(raw)
        if status != 200:
            kind = kind_for_http_status(status)
            if kind is ErrorKind.INVALID:  # a refused grant comes as 400/422: credentials
                kind = ErrorKind.AUTH
            raise UplinkError(
                kind, error_message(status, parsed, body_text(raw)), transport="auth", status=status
            )
        body, access = token_from_answer(parsed, "dice sign-in")
        refresh = body.get("refresh_token")
        lifetime = lifetime_of(body)
        return TokenPair(
            access,
            refresh if isinstance(refresh, str) and refresh else None,
            refresh_deadline(started, lifetime, self._margin),
            started + lifetime,
        )
