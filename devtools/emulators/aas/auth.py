"""A development OIDC issuer: RS256 key, discovery document, JWKS, client-credentials tokens.

The real service validates a JWT against its issuer's published metadata and then checks the
calling application against an allow list [doc]. The emulator plays both sides: it issues
app-only (server-to-server) tokens to registered clients and verifies them on every call. The
signing key is kept in the data dir so tokens stay valid across an emulator restart.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote_plus

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from devtools.emulators.aas.settings import EmulatorSettings


class AuthError(Exception):
    """Token refused. `malformed`: missing or unparsable (plain-text 401 over REST)."""

    def __init__(self, message: str, *, malformed: bool = False, allow_list: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.malformed = malformed
        self.allow_list = allow_list


@dataclass(frozen=True)
class Identity:
    client_id: str
    app_only: bool  # a server-to-server token: the caller must name the practitioner
    claims: dict[str, Any]


def _load_or_create_key(path: Path) -> rsa.RSAPrivateKey:
    if path.exists():
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        if not isinstance(key, rsa.RSAPrivateKey):
            raise ValueError(f"{path} is not an RSA private key")
        return key
    path.parent.mkdir(parents=True, exist_ok=True)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(pem)
    return key


class Issuer:
    """Issues and verifies the emulator's tokens; `issuer_url` is set once HTTP is bound."""

    def __init__(self, settings: EmulatorSettings) -> None:
        self.settings = settings
        self.key = _load_or_create_key(settings.data_dir / "issuer" / "signing-key.pem")
        self.jwk: dict[str, Any] = json.loads(
            jwt.algorithms.RSAAlgorithm.to_jwk(self.key.public_key())
        )
        self.kid = _thumbprint(self.jwk)
        self.jwk.update({"kid": self.kid, "use": "sig", "alg": "RS256"})
        self.issuer_url = ""
        self._public_key = self.key.public_key()
        # Tokens whose signature, audience and issuer were checked: (issuer, claims). A device
        # sends one token with thousands of requests; the RSA check and PyJWT's per-character
        # base64 scan cost ~1 ms each time, more than the storeChunk they guard (issue #24).
        self._verified: dict[str, tuple[str, dict[str, Any]]] = {}

    # ------------------------------------------------------------------ discovery
    def openid_configuration(self) -> dict[str, Any]:
        return {
            "issuer": self.issuer_url,
            "jwks_uri": f"{self.issuer_url}/.well-known/jwks.json",
            "token_endpoint": f"{self.issuer_url}/oauth2/token",
            "grant_types_supported": ["client_credentials"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
            "response_types_supported": ["token"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
        }

    def jwks(self) -> dict[str, Any]:
        return {"keys": [self.jwk]}

    # ------------------------------------------------------------------ issuing
    def authenticate_client(self, client_id: str, client_secret: str) -> bool:
        expected = self.settings.clients.get(client_id)
        return expected is not None and hmac.compare_digest(
            expected.encode(), client_secret.encode()
        )

    def mint(
        self,
        client_id: str,
        *,
        lifetime_s: float | None = None,
        app_only: bool = True,
        scope: str | None = None,
        audience: str | None = None,
    ) -> tuple[str, int]:
        """A signed token and its lifetime in whole seconds (negative = already expired)."""
        lifetime = self.settings.token_lifetime_s if lifetime_s is None else lifetime_s
        now = time.time()
        claims: dict[str, Any] = {
            "iss": self.issuer_url,
            "aud": audience or self.settings.audience,
            "sub": client_id if app_only else str(uuid.uuid5(uuid.NAMESPACE_URL, client_id)),
            "azp": client_id,
            "appid": client_id,
            "iat": int(now),
            "nbf": int(now) - 1,
            "exp": int(now + lifetime),
            "jti": str(uuid.uuid4()),
            "idtyp": "app" if app_only else "user",  # as Entra ID marks app-only tokens
        }
        if scope:
            claims["scp" if not app_only else "roles"] = scope.split()
        token = jwt.encode(claims, self.key, algorithm="RS256", headers={"kid": self.kid})
        return token, int(lifetime)

    # ------------------------------------------------------------------ verifying
    def verify_header(self, header: str | None) -> Identity:
        """Check `Authorization: Bearer <JWT>`: signature, expiry, audience, issuer, allow list."""
        if not header:
            raise AuthError("missing Authorization header", malformed=True)
        scheme, _, token = header.strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise AuthError("Authorization must be 'Bearer <token>'", malformed=True)
        return self.verify(token.strip())

    def verify(self, token: str) -> Identity:
        claims = self._checked_claims(token)
        client_id = str(claims.get("azp") or claims.get("appid") or "")
        if client_id not in self.settings.allow_list:
            raise AuthError(
                f"application {client_id!r} is not on the service allow list", allow_list=True
            )
        return Identity(client_id, claims.get("idtyp") == "app", claims)

    def _checked_claims(self, token: str) -> dict[str, Any]:
        """The claims of a token signed here for this audience and issuer, not expired; a
        token checked before is only checked for expiry again (its signature cannot change)."""
        known = self._verified.get(token)
        if known is not None and known[0] == self.issuer_url:
            if known[1]["exp"] <= time.time():
                del self._verified[token]
                raise AuthError("the bearer token has expired")
            return dict(known[1])
        try:
            jwt.get_unverified_header(token)
        except jwt.InvalidTokenError:
            raise AuthError("the bearer token is not a JWT", malformed=True) from None
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                self._public_key,
                algorithms=["RS256"],
                audience=self.settings.audience,
                issuer=self.issuer_url,
                options={"require": ["exp", "iss", "aud"]},
            )
        except jwt.ExpiredSignatureError:
            raise AuthError("the bearer token has expired") from None
        except jwt.InvalidTokenError as exc:
            raise AuthError(f"the bearer token is invalid: {exc}") from None
        if len(self._verified) >= VERIFIED_TOKENS:
            self._verified.pop(next(iter(self._verified)))  # the oldest
        self._verified[token] = (self.issuer_url, claims)
        return claims


VERIFIED_TOKENS = 256  # tokens remembered as verified (a few per client in practice)


def _thumbprint(jwk: dict[str, Any]) -> str:
    """RFC 7638 thumbprint of an RSA JWK, used as its key id."""
    canonical = json.dumps({"e": jwk["e"], "kty": "RSA", "n": jwk["n"]}, separators=(",", ":"))
    digest = hashlib.sha256(canonical.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def parse_basic(header: str | None) -> tuple[str, str] | None:
    """(client_id, secret) from `Authorization: Basic ...`, or None."""
    if not header or not header.lower().startswith("basic "):
        return None
    try:
        decoded = base64.b64decode(header[6:].strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None
    client_id, sep, secret = decoded.partition(":")
    if not sep:
        return None
    return unquote_plus(client_id), unquote_plus(secret)
