"""Inspection and control API under `/_emulator/` (no auth: a loopback development tool).

GET    /_emulator/info                               ports, URLs, dev client id
GET    /_emulator/sessions                           every session with its recordings
GET    /_emulator/sessions/{correlationId}           one session (404 when unknown)
GET    /_emulator/sessions/{cid}/recordings/{rid}/raw  the stored bytes
GET    /_emulator/faults                             armed faults
POST   /_emulator/faults                             arm one (or forget a recording at once)
DELETE /_emulator/faults                             disarm all
POST   /_emulator/tokens                             mint a token (expired, user, any client)
"""

from __future__ import annotations

from aiohttp import web

from devtools.emulators.aas.rest import CTX_KEY
from devtools.emulators.aas.store import rest_key_of
from devtools.emulators.common.bodies import json_object

INFO_KEY = web.AppKey("info", dict)


async def info(request: web.Request) -> web.Response:
    return web.json_response(request.app[INFO_KEY])


async def sessions(request: web.Request) -> web.Response:
    store = request.app[CTX_KEY].store
    return web.json_response({"sessions": [store.describe(s) for s in store.sessions.values()]})


async def session(request: web.Request) -> web.Response:
    store = request.app[CTX_KEY].store
    found = store.get(request.match_info["correlationId"])
    if found is None:
        return web.json_response({"error": "unknown correlationId"}, status=404)
    return web.json_response(store.describe(found))


async def raw(request: web.Request) -> web.StreamResponse:
    store = request.app[CTX_KEY].store
    cid, rid = request.match_info["correlationId"], request.match_info["recordingId"]
    found = store.get(cid)
    key = rid.lower() if found and rid.lower() in found.recordings else rest_key_of(rid)
    if found is None or key not in found.recordings:
        return web.json_response({"error": "unknown recording"}, status=404)
    return web.FileResponse(store.raw_path(cid, key))


async def list_faults(request: web.Request) -> web.Response:
    return web.json_response({"faults": request.app[CTX_KEY].faults.describe()})


async def add_fault(request: web.Request) -> web.Response:
    ctx = request.app[CTX_KEY]
    spec = await json_object(request)
    if spec is None:
        return web.json_response({"error": "body must be a JSON object"}, status=400)
    if spec.get("kind") == "forget_recording":
        cid, rid = spec.get("correlationId"), spec.get("recordingId")
        if not isinstance(cid, str) or not isinstance(rid, str | int):
            return web.json_response(
                {"error": "forget_recording needs correlationId and recordingId"}, status=400
            )
        if spec.get("unlessProcessing") and ctx.store.processing_started(cid, str(rid).lower()):
            # checked and done in one step: a StartProcessing cannot slip in between
            return web.json_response({"error": "already handed to processing"}, status=409)
        if not ctx.store.forget(cid, str(rid).lower()):
            return web.json_response({"error": "unknown recording"}, status=404)
        return web.json_response({"forgotten": {"correlationId": cid, "recordingId": str(rid)}})
    try:
        fault = ctx.faults.add(spec)
    except ValueError as exc:
        return web.json_response({"error": str(exc)}, status=400)
    return web.json_response({"fault": ctx.faults.describe()[-1], "id": fault.id}, status=201)


async def clear_faults(request: web.Request) -> web.Response:
    request.app[CTX_KEY].faults.clear()
    return web.Response(status=204)


async def mint_token(request: web.Request) -> web.Response:
    """A token on demand, for tests of expiry, user tokens and foreign clients."""
    ctx = request.app[CTX_KEY]
    spec = await json_object(request)
    if spec is None:
        return web.json_response({"error": "body must be a JSON object"}, status=400)
    client_id = spec.get("clientId", ctx.settings.client_id)
    lifetime = spec.get("lifetimeS")
    app_only = spec.get("appOnly", True)
    audience = spec.get("audience")
    if (
        not isinstance(client_id, str)
        or not (lifetime is None or isinstance(lifetime, int | float))
        or not isinstance(app_only, bool)
        or not (audience is None or isinstance(audience, str))
    ):
        return web.json_response({"error": "invalid token spec"}, status=400)
    token, seconds = ctx.issuer.mint(
        client_id, lifetime_s=lifetime, app_only=app_only, audience=audience
    )
    return web.json_response({"access_token": token, "token_type": "Bearer", "expires_in": seconds})


def add_routes(app: web.Application) -> None:
    app.router.add_get("/_emulator/info", info)
    app.router.add_get("/_emulator/sessions", sessions)
    app.router.add_get("/_emulator/sessions/{correlationId}", session)
    app.router.add_get("/_emulator/sessions/{correlationId}/recordings/{recordingId}/raw", raw)
    app.router.add_get("/_emulator/faults", list_faults)
    app.router.add_post("/_emulator/faults", add_fault)
    app.router.add_delete("/_emulator/faults", clear_faults)
    app.router.add_post("/_emulator/tokens", mint_token)
