"""A delegated (user) bearer token that a site's sign-in agent keeps fresh in a file.

The live AAS WebSocket has been seen to answer only delegated user tokens (an app-only
client-credentials token got silence). The device cannot sign a clinician in, so where a site
has such a token its agent writes it to `auth.delegated_token_file`; the live transport then
uses it, and REST keeps the `[auth]` token. The file is re-read whenever it changes, an expired
token is a clear error naming the file (never the token), and a 401 re-reads the file once.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

import jwt

from edge_recorder.support.logs import get_logger
from edge_recorder.uplinks.base import ErrorKind, UplinkError

log = get_logger(__name__)
MAX_TOKEN_BYTES = 16 * 1024  # a JWT is a few KB; anything larger is not a token


class DelegatedTokenProvider:
    """`TokenProvider` over a token file another process renews."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._seen: tuple[int, int] | None = None  # (mtime_ns, size) of the file last read
        self._value = ""

    async def token(self) -> str:
        self._reload_if_changed()
        self._check_expiry()
        return self._value

    async def refresh(self, rejected: str | None = None) -> str:
        self._seen = None  # a 401: read the file again even if it looks unchanged
        return await self.token()

    async def aclose(self) -> None:
        return None

    def _fail(self, message: str) -> UplinkError:
        return UplinkError(ErrorKind.AUTH, message, transport="auth", retryable=True)

    def _reload_if_changed(self) -> None:
        try:
            st = self._path.stat()
            if self._seen == (st.st_mtime_ns, st.st_size):
                return
            if st.st_size > MAX_TOKEN_BYTES:
                raise self._fail(f"delegated token file {self._path} is over 16 KiB")
            with self._path.open("rb") as f:
                raw = f.read(MAX_TOKEN_BYTES + 1)
        except OSError as exc:
            raise self._fail(
                f"cannot read delegated token file {self._path}: {exc.strerror}"
            ) from None
        value = raw.decode("utf-8", errors="replace").strip()
        if not value or len(raw) > MAX_TOKEN_BYTES:
            raise self._fail(f"delegated token file {self._path} is empty or too large")
        self._value, self._seen = value, (st.st_mtime_ns, st.st_size)
        log.info("delegated token loaded", file=str(self._path))

    def _check_expiry(self) -> None:
        """Only the expiry is read (unverified: the service verifies); an opaque token passes."""
        try:
            claims = jwt.decode(self._value, options={"verify_signature": False})
        except jwt.PyJWTError:
            return
        exp = claims.get("exp")
        if isinstance(exp, int | float) and exp <= time.time():
            at = datetime.fromtimestamp(exp, UTC).isoformat(timespec="seconds")
            raise self._fail(
                f"the delegated token in {self._path} expired at {at}; the site's sign-in "
                "agent must renew it"
            )
