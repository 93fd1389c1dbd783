"""HTTP side of the development issuer: discovery, JWKS and the OAuth2 token endpoint.

The token endpoint follows RFC 6749 §4.4 (client credentials): form-encoded body,
client authentication by HTTP Basic or by `client_id`/`client_secret` in the body (not both),
RFC 6749 §5.2 error bodies, `Cache-Control: no-store`.
"""

from __future__ import annotations

from aiohttp import web

from devtools.emulators.aas.auth import parse_basic
from devtools.emulators.aas.rest import CTX_KEY
from edge_recorder.support.logs import get_logger

log = get_logger(__name__)
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def oauth_error(status: int, code: str, description: str, **headers: str) -> web.Response:
    return web.json_response(
        {"error": code, "error_description": description},
        status=status,
        headers={**NO_STORE, **headers},
    )


async def openid_configuration(request: web.Request) -> web.Response:
    return web.json_response(request.app[CTX_KEY].issuer.openid_configuration())


async def jwks(request: web.Request) -> web.Response:
    return web.json_response(request.app[CTX_KEY].issuer.jwks())


async def token(request: web.Request) -> web.Response:
    ctx = request.app[CTX_KEY]
    if request.content_type != "application/x-www-form-urlencoded":
        return oauth_error(400, "invalid_request", "body must be application/x-www-form-urlencoded")
    form = await request.post()
    fields = {k: v for k, v in form.items() if isinstance(v, str)}
    if fields.get("grant_type") != "client_credentials":
        return oauth_error(400, "unsupported_grant_type", "only client_credentials is supported")
    basic = parse_basic(request.headers.get("Authorization"))
    in_body = "client_secret" in fields
    if basic and in_body:
        return oauth_error(400, "invalid_request", "use one client authentication method")
    if basic:
        client_id, secret = basic
    else:
        client_id, secret = fields.get("client_id", ""), fields.get("client_secret", "")
    if not client_id or not ctx.issuer.authenticate_client(client_id, secret):
        log.info("token refused", client_id=client_id or "-")
        return oauth_error(
            401, "invalid_client", "client authentication failed", **{"WWW-Authenticate": "Basic"}
        )
    audience = fields.get("audience") or fields.get("resource")
    if audience and audience != ctx.settings.audience:
        return oauth_error(400, "invalid_target", f"unknown audience; use {ctx.settings.audience}")
    scope = fields.get("scope")
    access_token, lifetime = ctx.issuer.mint(client_id, scope=scope)
    log.info("token issued", client_id=client_id, lifetime_s=lifetime)
    body: dict[str, object] = {
        "access_token": access_token,
        "token_type": "Bearer",
        "expires_in": lifetime,
    }
    if scope:
        body["scope"] = scope
    return web.json_response(body, headers=NO_STORE)


def add_routes(app: web.Application) -> None:
    app.router.add_get("/.well-known/openid-configuration", openid_configuration)
    app.router.add_get("/.well-known/jwks.json", jwks)
    app.router.add_post("/oauth2/token", token)
