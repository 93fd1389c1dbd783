"""Inspection and control under `/_emulator/` (no auth: a loopback development tool).

GET    /_emulator/info                                   URLs, tenant, dev client id
GET    /_emulator/sessions                               every interaction with its recordings
GET    /_emulator/sessions/{key}                         one (interaction id or encounter id)
GET    /_emulator/sessions/{key}/recordings/{rid}/raw    the uploaded file, byte for byte
GET    /_emulator/sessions/{key}/recordings/{rid}/audio  its audio data (WAV data chunk / FLAC
                                                         frames), to compare with spool bytes
GET|POST|DELETE /_emulator/faults                        fail | latency | drop_stream (armed),
                                                         drop_connection {path, count},
                                                         lose_answer {path, count},
                                                         forget_interaction {key},
                                                         forget_recording {key, recordingId}
POST   /_emulator/tokens                                 mint a token {lifetimeS}
"""

from __future__ import annotations

from aiohttp import web

from devtools.emulators.common.bodies import json_object
from devtools.emulators.corti.context import CTX, Drop


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


async def info(request: web.Request) -> web.Response:
    ctx = request.app[CTX]
    return web.json_response(
        {
            "apiUrl": ctx.base_url + "/v2",
            "authUrl": ctx.base_url + "/realms",
            "wsUrl": ctx.ws_base,
            "tenant": ctx.settings.tenant,
            "clientId": ctx.settings.client_id,
            "tokensIssued": ctx.token_count,
            "dataDir": str(ctx.settings.data_dir),
        }
    )


async def sessions(request: web.Request) -> web.Response:
    store = request.app[CTX].store
    return web.json_response({"sessions": [store.describe(i) for i in store.interactions.values()]})


async def session(request: web.Request) -> web.Response:
    store = request.app[CTX].store
    found = store.find(request.match_info["key"])
    if found is None:
        return _error(404, "unknown interaction")
    return web.json_response(store.describe(found))


def _recording(request: web.Request) -> str | None:
    store = request.app[CTX].store
    found = store.find(request.match_info["key"])
    rid = request.match_info["rid"]
    return rid if found is not None and rid in found.recordings else None


async def raw(request: web.Request) -> web.Response:
    rid = _recording(request)
    if rid is None:
        return _error(404, "unknown recording")
    return web.Response(
        body=request.app[CTX].store.raw(rid), content_type="application/octet-stream"
    )


async def audio(request: web.Request) -> web.Response:
    rid = _recording(request)
    if rid is None:
        return _error(404, "unknown recording")
    data = request.app[CTX].store.audio(rid)
    return web.Response(body=data, content_type="application/octet-stream")


async def list_faults(request: web.Request) -> web.Response:
    ctx = request.app[CTX]
    drops = [
        {"kind": "lose_answer" if d.after_store else "drop_connection", "path": d.path,
         "count": d.count}
        for d in ctx.drops
    ]  # fmt: skip
    return web.json_response({"faults": ctx.faults.describe() + drops})


async def add_fault(request: web.Request) -> web.Response:
    ctx = request.app[CTX]
    spec = await json_object(request)
    if spec is None:
        return _error(400, "body must be a JSON object")
    kind = spec.get("kind")
    if kind in ("drop_connection", "lose_answer"):
        count, path = spec.get("count", 1), spec.get("path", "")
        if not isinstance(count, int) or count < 1 or not isinstance(path, str):
            return _error(400, f"{kind} needs count >= 1 and a path string")
        ctx.drops.append(Drop(path, count, after_store=kind == "lose_answer"))
        return web.json_response(
            {"fault": {"kind": kind, "path": path, "count": count}}, status=201
        )
    if kind in ("forget_interaction", "forget_recording"):
        found = ctx.store.find(str(spec.get("key", "")))
        if found is None:
            return _error(404, "unknown interaction")
        if kind == "forget_interaction":
            ctx.store.forget_interaction(found.interactionId)
            return web.json_response({"forgotten": found.interactionId})
        rid = str(spec.get("recordingId", ""))
        if not ctx.store.forget_recording(found, rid):
            return _error(404, "unknown recording")
        return web.json_response({"forgotten": rid})
    try:
        fault = ctx.faults.add(spec)
    except ValueError as exc:
        return _error(400, str(exc))
    return web.json_response({"fault": ctx.faults.describe()[-1], "id": fault.id}, status=201)


async def clear_faults(request: web.Request) -> web.Response:
    ctx = request.app[CTX]
    ctx.faults.clear()
    ctx.drops.clear()
    return web.Response(status=204)


async def mint_token(request: web.Request) -> web.Response:
    ctx = request.app[CTX]
    spec = await json_object(request)
    if spec is None:
        return _error(400, "body must be a JSON object")
    lifetime = spec.get("lifetimeS")
    if not (lifetime is None or isinstance(lifetime, int | float)):
        return _error(400, "lifetimeS must be a number")
    tenant = str(spec.get("tenant", ctx.settings.tenant))
    token, seconds = ctx.issuer.mint(tenant, ctx.settings.client_id, lifetime_s=lifetime)
    return web.json_response({"access_token": token, "token_type": "Bearer", "expires_in": seconds})


def add_routes(app: web.Application) -> None:
    r = app.router
    r.add_get("/_emulator/info", info)
    r.add_get("/_emulator/sessions", sessions)
    r.add_get("/_emulator/sessions/{key}", session)
    r.add_get("/_emulator/sessions/{key}/recordings/{rid}/raw", raw)
    r.add_get("/_emulator/sessions/{key}/recordings/{rid}/audio", audio)
    r.add_get("/_emulator/faults", list_faults)
    r.add_post("/_emulator/faults", add_fault)
    r.add_delete("/_emulator/faults", clear_faults)
    r.add_post("/_emulator/tokens", mint_token)
