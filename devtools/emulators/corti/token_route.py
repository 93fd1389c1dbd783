"""The tenant realm's token endpoint (Keycloak's client-credentials grant) as Corti serves it."""

from __future__ import annotations

import hmac

from aiohttp import web

from devtools.emulators.corti.context import CTX
from devtools.emulators.corti.tokens import NO_STORE


def _oauth_error(status: int, code: str, description: str) -> web.Response:
    return web.json_response(
        {"error": code, "error_description": description}, status=status, headers=NO_STORE
    )


async def token_endpoint(request: web.Request) -> web.Response:
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
