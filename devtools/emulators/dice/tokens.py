"""Token issuer of the Dice emulator: password grant, refresh (revoking the old pair), checks.

Tokens are opaque random strings [inferred: the docs do not say JWT]; only their SHA-256 is
kept, in `<data>/tokens.json`, so a device's token stays valid across an emulator restart.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass
class _Pair:
    access: str  # sha256 hex
    refresh: str  # sha256 hex
    expires_at: float  # epoch seconds (access token)


class TokenError(Exception):
    """A refused grant; `status` is the HTTP answer."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


class Tokens:
    def __init__(
        self, path: Path, lifetime_s: float, clock: Callable[[], float] = time.time
    ) -> None:
        self._path = path
        self.lifetime_s = lifetime_s
        self._clock = clock
        self._pairs: list[_Pair] = []
        self.sign_ins = 0
        self.refreshes = 0
        if path.exists():
            self._pairs = [_Pair(**p) for p in json.loads(path.read_text())]

    def _save(self) -> None:
        tmp = self._path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump([asdict(p) for p in self._pairs], fh)
        tmp.replace(self._path)

    def _issue(self) -> dict[str, object]:
        access, refresh = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        now = self._clock()
        self._pairs = [p for p in self._pairs if p.expires_at > now - 86400]  # forget stale
        self._pairs.append(_Pair(_digest(access), _digest(refresh), now + self.lifetime_s))
        self._save()
        return {
            "access_token": access,
            "refresh_token": refresh,
            "token_type": "bearer",
            "expires_in": int(self.lifetime_s) if self.lifetime_s >= 1 else self.lifetime_s,
        }

    def sign_in(
        self, username: str, password: str, want_user: str, want_password: str
    ) -> dict[str, object]:
        ok_user = secrets.compare_digest(username.encode(), want_user.encode())
        ok_pass = secrets.compare_digest(password.encode(), want_password.encode())
        if not (ok_user and ok_pass):
            raise TokenError(401, "Incorrect username or password")
        self.sign_ins += 1
        return self._issue()

    def refresh(self, refresh_token: str) -> dict[str, object]:
        """A new pair; the old access AND refresh tokens stop working [doc]."""
        wanted = _digest(refresh_token)
        for pair in self._pairs:
            if secrets.compare_digest(pair.refresh, wanted):
                self._pairs.remove(pair)
                self.refreshes += 1
                return self._issue()
        raise TokenError(401, "Invalid or revoked refresh token")

    def check(self, access_token: str) -> str | None:
        """None when valid, else why not."""
        wanted = _digest(access_token)
        for pair in self._pairs:
            if secrets.compare_digest(pair.access, wanted):
                return None if pair.expires_at > self._clock() else "token expired"
        return "unknown or revoked token"

    def revoke_all(self) -> int:
        count = len(self._pairs)
        self._pairs = []
        self._save()
        return count

    def expire_access(self) -> None:
        """Every access token expires now (refresh tokens still work)."""
        now = self._clock()
        for pair in self._pairs:
            pair.expires_at = min(pair.expires_at, now - 1)
        self._save()
