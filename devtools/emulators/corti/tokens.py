"""The emulator's Keycloak-like issuer: one realm per tenant, client-credentials tokens.

`POST /realms/{tenant}/protocol/openid-connect/token` (form: grant_type=client_credentials,
client_id, client_secret, scope?) [doc] answers `{access_token, expires_in, token_type, …}`.
Tokens are HS256 JWTs signed with a key kept in the data dir (valid across restarts); the
API checks signature, expiry and that the token's realm is the request's `Tenant-Name`.
"""

from __future__ import annotations

import hmac
import os
import secrets
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from aiohttp import web

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


def _oauth_error(status: int, code: str, description: str) -> web.Response:
    return web.json_response(
        {"error": code, "error_description": description}, status=status, headers=NO_STORE
    )


async def token_endpoint(request: web.Request) -> web.Response:
    from devtools.emulators.corti.app import CTX

    ctx = request.app[CTX]
    tenant = request.match_info["tenant"]
    if fault := ctx.faults.take_failure("token", request.path):
        return _oauth_error(fault.status, "temporarily_unavailable", "injected fault")
    if tenant != ctx.settings.tenant:
        return web.json_response({"error": "Realm does not exist"}, status=404)
    if request.content_type != "application/x-www-form-urlencoded":
        return _oauth_error(
            400, "invalid_request", "body must be application/x-www-form-urlencoded"
        )
    form = {k: v for k, v in (await request.post()).items() if isinstance(v, str)}
    if form.get("grant_type") != "client_credentials":
        return _oauth_error(400, "unsupported_grant_type", "only client_credentials is supported")
    client_id, secret = form.get("client_id", ""), form.get("client_secret", "")
    good = client_id == ctx.settings.client_id and hmac.compare_digest(
        secret.encode(), ctx.settings.client_secret.encode()
    )
    if not good:
        return _oauth_error(401, "invalid_client", "Invalid client or Invalid client credentials")
    ctx.token_count += 1
    token, lifetime = ctx.issuer.mint(tenant, client_id, scope=form.get("scope"))
    return web.json_response(
        {
            "access_token": token,
            "expires_in": lifetime,
            "refresh_expires_in": 0,
            "token_type": "Bearer",
            "not-before-policy": 0,
            "scope": form.get("scope") or "openid",
        },
        headers=NO_STORE,
    )
