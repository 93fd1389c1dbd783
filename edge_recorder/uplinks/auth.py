"""Bearer tokens for the uplinks: OAuth2 client credentials, or a static token file (dev).

One provider per process is shared by every transport. It caches the token and refreshes it
`auth.refresh_margin_s` before expiry; concurrent callers wait on one refresh instead of each
asking the issuer (single flight). After a 401 a caller asks for `refresh(rejected)` once: if
another task already replaced the rejected token, the new one comes back without a round trip.
Tokens and the secret never reach a log line or an exception message.
"""

from __future__ import annotations

import asyncio
import math
import ssl
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

import aiohttp
import jwt

from edge_recorder.config.services.aas import AuthConfig
from edge_recorder.support.credentials import SecretUnavailable, read_secret
from edge_recorder.support.logs import get_logger
from edge_recorder.uplinks.base import ErrorKind, UplinkError, kind_for_http_status
from edge_recorder.uplinks.limits import (
    TOKEN_ANSWER_MAX_BYTES,
    NotJson,
    body_text,
    parse_json,
    read_capped,
    read_prefix,
)

log = get_logger(__name__)

T = TypeVar("T")
DEFAULT_LIFETIME_S = 300.0  # assumed when the issuer states no expiry at all


class TokenProvider(Protocol):
    """Where every uplink gets its `Authorization: Bearer` value."""

    async def token(self) -> str:
        """A token valid for at least the refresh margin (fetched or cached)."""
        ...

    async def refresh(self, rejected: str | None = None) -> str:
        """A token other than `rejected` (the one a server just refused)."""
        ...

    async def aclose(self) -> None: ...


def make_ssl_context(ca_file: Path | None) -> ssl.SSLContext:
    """Verifying TLS context; `ca_file` replaces the system store (a private CA)."""
    return ssl.create_default_context(cafile=str(ca_file) if ca_file else None)


@dataclass
class _Cached:
    value: str
    refresh_at: float  # monotonic
    expires_at: float  # monotonic


def _refresh_at(now: float, lifetime_s: float, margin_s: float) -> float:
    """When to refresh: `margin_s` before expiry, but never in the first half of a short life.

    Without the floor a token living less than the margin would be fetched on every call.
    """
    return now + max(lifetime_s - margin_s, lifetime_s / 2)


def _seconds(value: Any) -> float | None:
    """A finite, non-negative number of seconds from an issuer's field, else None.

    JSON allows `NaN`, `Infinity` and integers too big for a float: a NaN lifetime would
    refetch the token on every call, an infinite one would keep it forever."""
    if isinstance(value, bool) or not isinstance(value, int | float | str) or value == "":
        return None
    try:
        seconds = float(value)
    except (ValueError, OverflowError):
        return None
    return max(seconds, 0.0) if math.isfinite(seconds) else None


def _lifetime(body: dict[str, Any], access_token: str) -> float:
    """Seconds the token lives: `expires_in`, else the JWT's own `exp`, else a default."""
    expires_in = _seconds(body.get("expires_in"))
    if expires_in is not None:
        return expires_in
    try:
        claims = jwt.decode(access_token, options={"verify_signature": False})
    except jwt.PyJWTError:
        return DEFAULT_LIFETIME_S
    exp = claims.get("exp")
    exp_s = _seconds(exp) if isinstance(exp, int | float) else None
    if exp_s is not None:
        return max(exp_s - time.time(), 0.0)
    return DEFAULT_LIFETIME_S


def token_from_answer(body: Any, issuer: str) -> tuple[dict[str, Any], str]:
    """A 200 token answer's object and access token (`body` from `limits.parse_json`).

    Anything else (bytes that are not UTF-8, not JSON, JSON that is not an object, no
    access_token or not a string) is a retryable PROTOCOL error from transport "auth": the
    issuer is misconfigured or something else answers on its address, which gets fixed on
    the server side, so the delivery engine backs off and shows the reason in `last_error`."""
    if isinstance(body, NotJson):
        problem = f"a body that is {body.reason}"
    elif not isinstance(body, dict):
        problem = f"JSON that is not an object ({_json_type(body)})"
    else:
        access = body.get("access_token")
        if isinstance(access, str) and access:
            return body, access
        if access is None:
            problem = "no access_token"
        elif access == "":
            problem = "an empty access_token"
        else:
            problem = f"an access_token that is not a string ({_json_type(access)})"
    raise UplinkError(
        ErrorKind.PROTOCOL,
        f"{issuer} answered 200 with {problem}",
        transport="auth",
        retryable=True,
    )


def _json_type(value: Any) -> str:
    """What a JSON value is, with its article: "an array", "a string", "null"."""
    if value is None:
        return "null"
    names = {dict: "an object", list: "an array", str: "a string", bool: "a boolean"}
    return names.get(type(value), "a number" if isinstance(value, int | float) else "a value")


def _oauth_error_message(status: int, body: Any, text: str) -> str:
    """The issuer's reason (RFC 6749 `error` + `error_description`), or its status text."""
    if isinstance(body, dict) and body.get("error"):
        desc = body.get("error_description")
        return f"{body['error']}: {desc}" if desc else str(body["error"])
    snippet = text.strip().splitlines()[0][:200] if text.strip() else ""
    return snippet or f"token endpoint answered HTTP {status}"


class ClientCredentialsProvider:
    """OAuth2 client-credentials grant (client_secret_post) with caching and single flight."""

    def __init__(
        self,
        token_url: str,
        client_id: str,
        read_client_secret: Callable[[], str],
        *,
        scope: str | None = None,
        audience: str | None = None,
        refresh_margin_s: float = 60.0,
        ca_file: Path | None = None,
        timeout_s: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._url = token_url
        self._client_id = client_id
        self._read_secret = read_client_secret
        self._scope = scope
        self._audience = audience
        self._margin = refresh_margin_s
        self._ssl: ssl.SSLContext | bool = (
            make_ssl_context(ca_file) if token_url.startswith("https://") else False
        )
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._clock = clock
        self._cached: _Cached | None = None
        self._lock = asyncio.Lock()
        self._session: aiohttp.ClientSession | None = None
        self.fetch_count = 0  # how many tokens this provider obtained (tests, status)

    @classmethod
    def from_config(cls, auth: AuthConfig, timeout_s: float = 10.0) -> ClientCredentialsProvider:
        if not auth.token_url:
            raise ValueError("auth.token_url is required for auth.mode = 'client_credentials'")
        if not auth.client_id:
            raise ValueError("auth.client_id is required for auth.mode = 'client_credentials'")
        secret_file = auth.client_secret_file
        return cls(
            auth.token_url,
            auth.client_id,
            lambda: read_secret(secret_file, "aas-client-secret"),
            scope=auth.scope,
            audience=auth.audience,
            refresh_margin_s=auth.refresh_margin_s,
            ca_file=auth.ca_file,
            timeout_s=timeout_s,
        )

    async def token(self) -> str:
        cached = self._cached
        if cached is not None and self._clock() < cached.refresh_at:
            return cached.value
        async with self._lock:
            cached = self._cached  # another task may have refreshed while we waited
            if cached is not None and self._clock() < cached.refresh_at:
                return cached.value
            return await self._fetch()

    async def refresh(self, rejected: str | None = None) -> str:
        async with self._lock:
            cached = self._cached
            fresh = cached is not None and self._clock() < cached.refresh_at
            if cached is not None and fresh and cached.value != rejected:
                return cached.value
            return await self._fetch()

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _fetch(self) -> str:
        try:
            secret = self._read_secret()
        except SecretUnavailable as exc:
            raise UplinkError(ErrorKind.AUTH, str(exc), transport="auth", retryable=False) from None
        form = {
            "grant_type": "client_credentials",
            "client_id": self._client_id,
            "client_secret": secret,
        }
        if self._scope:
            form["scope"] = self._scope
        if self._audience:
            form["audience"] = self._audience
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        started = self._clock()
        try:
            async with self._session.post(
                self._url, data=form, ssl=self._ssl, headers={"Accept": "application/json"}
            ) as resp:
                status = resp.status
                if status == 200:
                    raw = await read_capped(
                        resp,
                        TOKEN_ANSWER_MAX_BYTES,
                        what="the token endpoint's answer",
                        transport="auth",
                    )
                else:  # only a snippet of a refusal is ever shown
                    raw = await read_prefix(resp)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise UplinkError(
                ErrorKind.UNAVAILABLE,
                f"token endpoint unreachable: {type(exc).__name__}",
                transport="auth",
            ) from None
        body = parse_json(raw)
        if status != 200:
            kind = kind_for_http_status(status)
            if kind is ErrorKind.INVALID:  # RFC 6749: invalid_client/invalid_grant come as 400
                kind = ErrorKind.AUTH
            raise UplinkError(
                kind,
                _oauth_error_message(status, body, body_text(raw)),
                transport="auth",
                status=status,
            )
        answer, access = token_from_answer(body, "token endpoint")
        lifetime = _lifetime(answer, access)
        self._cached = _Cached(
            access, _refresh_at(started, lifetime, self._margin), started + lifetime
        )
        self.fetch_count += 1
        log.info("access token obtained", lifetime_s=round(lifetime, 1), fetches=self.fetch_count)
        return access


class StaticTokenProvider:
    """A token from a file or the `aas-token` credential, re-read on refresh (development)."""

    def __init__(self, read_token: Callable[[], str]) -> None:
        self._read = read_token
        self._value: str | None = None

    @classmethod
    def from_config(cls, auth: AuthConfig) -> StaticTokenProvider:
        token_file = auth.token_file
        return cls(lambda: read_secret(token_file, "aas-token"))

    async def token(self) -> str:
        if self._value is None:
            self._value = self._load()
        return self._value

    async def refresh(self, rejected: str | None = None) -> str:
        self._value = self._load()
        return self._value

    async def aclose(self) -> None:
        return None

    def _load(self) -> str:
        try:
            return self._read()
        except SecretUnavailable as exc:
            raise UplinkError(ErrorKind.AUTH, str(exc), transport="auth", retryable=False) from None


def token_provider_from_config(auth: AuthConfig, timeout_s: float = 10.0) -> TokenProvider:
    """The provider `auth.mode` asks for."""
    if auth.mode == "static_token":
        return StaticTokenProvider.from_config(auth)
    return ClientCredentialsProvider.from_config(auth, timeout_s=timeout_s)


def is_rejected_token(error: UplinkError) -> bool:
    """A service (not the issuer) refused the bearer token: worth one refresh and retry."""
    return error.kind is ErrorKind.AUTH and error.transport != "auth"


async def call_with_token(provider: TokenProvider, call: Callable[[str], Awaitable[T]]) -> T:
    """Run `call(token)`; on a 401 from the service refresh the token once and retry once."""
    token = await provider.token()
    try:
        return await call(token)
    except UplinkError as error:
        if not is_rejected_token(error):
            raise
        log.info("token rejected; refreshing once", transport=error.transport)
    return await call(await provider.refresh(token))
