"""The emulator's Keycloak-like issuer: one realm per tenant, client-credentials tokens.

`POST /realms/{tenant}/protocol/openid-connect/token` (form: grant_type=client_credentials,
client_id, client_secret, scope?) [doc] answers `{access_token, expires_in, token_type, …}`.
Tokens are HS256 JWTs signed with a key kept in the data dir (valid across restarts); the
API checks signature, expiry and that the token's realm is the request's `Tenant-Name`.
"""

from __future__ import annotations

import os
import secrets
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt

from devtools.emulators.corti.settings import CortiEmulatorSettings

NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


class TokenRejected(Exception):
    pass


@dataclass(frozen=True)
class Caller:
    client_id: str
    tenant: str


def _key(path: Path) -> bytes:
    if path.exists():
        return path.read_bytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_bytes(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(key)
    return key


class Issuer:
    def __init__(self, settings: CortiEmulatorSettings) -> None:
        self.settings = settings
        self._key = _key(settings.data_dir / "issuer.key")
        self.base_url = ""  # set once the HTTP port is bound

    def realm_url(self, tenant: str) -> str:
        return f"{self.base_url}/realms/{tenant}"

    def mint(self, tenant: str, client_id: str, lifetime_s: float | None = None,
             scope: str | None = None) -> tuple[str, int]:  # fmt: skip
        lifetime = self.settings.token_lifetime_s if lifetime_s is None else lifetime_s
        issued = time.time()
        claims: dict[str, Any] = {
            "iss": self.realm_url(tenant),
            "azp": client_id,
            "sub": str(uuid.uuid5(uuid.NAMESPACE_URL, client_id)),
            "iat": int(issued),
            "exp": int(issued + lifetime),
            "jti": str(uuid.uuid4()),
            "typ": "Bearer",
            "scope": scope or "openid",
        }
        return jwt.encode(claims, self._key, algorithm="HS256"), int(lifetime)

    def verify(self, token: str, tenant: str) -> Caller:
        try:
            claims = jwt.decode(
                token,
                self._key,
                algorithms=["HS256"],
                issuer=self.realm_url(tenant),
                options={"require": ["exp", "iss"]},
            )
        except jwt.ExpiredSignatureError:
            raise TokenRejected("the access token has expired") from None
        except jwt.InvalidIssuerError:
            raise TokenRejected("the access token was issued for another tenant") from None
        except jwt.InvalidTokenError:
            raise TokenRejected("the access token is invalid") from None
        return Caller(str(claims.get("azp", "")), tenant)
