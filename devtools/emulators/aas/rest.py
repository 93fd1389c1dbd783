"""REST front (aiohttp): PUT /ambient-sessions, PUT /audio/storeChunk, POST /audio/finalizeUpload.

Order of checks, as an ASP.NET service runs them: authentication (401 plain text when the
token is missing, malformed or invalid), allow list (403 JSON, or 401 JSON by setting), the
`x-correlation-id` header (400, exact body from the seed), api-version, body validation (all
errors joined into one `error` string), then the ambient session (404 unless
`skipAmbientSessionExistence`). Bodies are `{"error": null}` on success.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import BodyPartReader, web

from devtools.emulators.aas import core, rules
from devtools.emulators.aas.auth import AuthError
from devtools.emulators.aas.settings import REST_AUDIO_API_VERSION, SESSIONS_API_VERSIONS
from devtools.emulators.common.bodies import json_object
from edge_recorder.support.logs import get_logger

log = get_logger(__name__)
CTX_KEY = web.AppKey("ctx", core.Context)
MISSING_TRACE_ID = "x-correlation-id header is required"
STATUS_FOR_KIND = {"invalid": 400, "gap": 400, "conflict": 409, "not_found": 404, "state": 409}


def error(status: int, message: str | None, **headers: str) -> web.Response:
    return web.json_response({"error": message}, status=status, headers=headers or None)


def check_auth(request: web.Request, trace_id: bool = True) -> web.Response | None:
    """None when the caller may proceed, else the documented refusal. `trace_id`: the call
    must carry an `x-correlation-id` (the audio endpoints; the partner API's
    `PUT /ambient-sessions` is seen to work without one)."""
    ctx = request.app[CTX_KEY]
    try:
        ctx.issuer.verify_header(request.headers.get("Authorization"))
    except AuthError as exc:
        if exc.allow_list:
            return error(ctx.settings.not_allowlisted_status, exc.message)
        challenge = 'Bearer error="invalid_token"' if not exc.malformed else "Bearer"
        return web.Response(
            status=401,
            text=f"Unauthorized: {exc.message}",
            content_type="text/plain",
            headers={"WWW-Authenticate": challenge},
        )
    if not trace_id:
        return None
    if not request.headers.get("x-correlation-id"):
        return error(400, MISSING_TRACE_ID)
    if not rules.valid_uuid(request.headers["x-correlation-id"]):
        return error(400, "x-correlation-id header must be a UUID")
    return None


def check_api_version(request: web.Request, accepted: tuple[str, ...]) -> web.Response | None:
    version = request.query.get("api-version")
    if version in accepted:
        return None
    supported = ", ".join(accepted)
    return error(
        400,
        f"api-version query parameter must be {supported}",
        **{"api-supported-versions": supported},
    )


async def json_body(request: web.Request) -> dict[str, Any] | web.Response:
    body = await json_object(request)
    return error(400, "request body must be a JSON object") if body is None else body


def session_missing(request: web.Request, cid: str, skip: bool) -> web.Response | None:
    ctx = request.app[CTX_KEY]
    if skip or ctx.store.get(cid) is not None:
        if ctx.store.get(cid) is None:
            ctx.store.upsert_session(cid, "rest-implicit")
        return None
    return error(404, f"ambient session not found for correlationId {cid}")


def _str(body: dict[str, Any], key: str) -> str:
    value = body.get(key)
    return value if isinstance(value, str) else ""


async def put_ambient_session(request: web.Request) -> web.Response:
    refusal = check_auth(request, trace_id=False) or check_api_version(
        request, SESSIONS_API_VERSIONS
    )
    if refusal:
        return refusal
    body = await json_body(request)
    if isinstance(body, web.Response):
        return body
    errors = []
    if not rules.valid_correlation_id(body.get("correlationId")):
        errors.append("correlationId is required (letters, digits, _ - |; max 128)")
    for key in ("productId", "customerId"):
        if not rules.valid_uuid(body.get(key)):
            errors.append(f"{key} is required (valid UUID)")
    if "partnerId" in body and not rules.valid_uuid(body["partnerId"]):
        errors.append("partnerId must be a valid UUID")
    if not _str(body, "externalUserId"):
        errors.append("externalUserId is required")
    for key in ("data", "ehrInstanceId"):
        if key in body and not isinstance(body[key], str):
            errors.append(f"{key} must be a string")
    query_customer = request.query.get("customerId")
    if query_customer is not None and query_customer != body.get("customerId"):
        errors.append("customerId query parameter must match the body's customerId")
    if errors:
        return error(400, rules.join_errors(errors))
    fields = {
        "product_id": _str(body, "productId"),
        "partner_id": _str(body, "partnerId"),
        "customer_id": _str(body, "customerId"),
        "external_user_id": _str(body, "externalUserId"),
        "ehr_instance_id": _str(body, "ehrInstanceId"),
        "data": _str(body, "data"),
    }
    store = request.app[CTX_KEY].store
    session, created = store.upsert_session(body["correlationId"], "rest", **fields)
    payload = {k: v for k, v in body.items() if k in _SESSION_KEYS}
    payload["correlationId"] = session.correlation_id
    return web.json_response(payload, status=201 if created else 200)


_SESSION_KEYS = (
    "correlationId",
    "productId",
    "customerId",
    "partnerId",
    "externalUserId",
    "data",
    "ehrInstanceId",
)


async def delete_ambient_session(request: web.Request) -> web.Response:
    refusal = check_auth(request)
    if refusal:
        return refusal
    if request.app[CTX_KEY].store.delete_session(request.match_info["correlationId"]):
        return web.Response(status=204)
    return error(404, "ambient session not found")


def chunk_metadata_errors(meta: dict[str, Any]) -> list[str]:
    errors = []
    for key in ("productId", "partnerId", "customerId"):
        if not rules.valid_uuid(meta.get(key)):
            errors.append(f"{key} is required (valid UUID)")
    if not _str(meta, "correlationId"):
        errors.append("correlationId is required (non-empty string)")
    for key in ("recordingId", "chunkId"):
        if not rules.positive_int(meta.get(key)):
            errors.append(f"{key} must be a positive integer (> 0)")
    for key in ("isLast", "skipAmbientSessionExistence"):
        if key in meta and not isinstance(meta[key], bool):
            errors.append(f"{key} must be a boolean")
    return errors


async def read_multipart(request: web.Request) -> tuple[dict[str, Any], bytes | None] | str:
    """(metadata, content) from a storeChunk body, or why it cannot be read."""
    if not request.content_type.startswith("multipart/"):
        return "storeChunk expects multipart/form-data with parts 'metadata' and 'content'"
    meta_text: str | None = None
    content: bytes | None = None
    reader = await request.multipart()
    async for part in reader:
        if not isinstance(part, BodyPartReader):
            continue
        if part.name == "metadata":
            meta_text = (await part.read()).decode("utf-8", "replace")
        elif part.name == "content":
            content = bytes(await part.read())
    if meta_text is None:
        return "the 'metadata' part is required"
    try:
        meta = json.loads(meta_text)
    except json.JSONDecodeError:
        return "the 'metadata' part must be a JSON object"
    if not isinstance(meta, dict):
        return "the 'metadata' part must be a JSON object"
    return meta, content


async def store_chunk(request: web.Request) -> web.Response:
    refusal = check_auth(request) or check_api_version(request, (REST_AUDIO_API_VERSION,))
    if refusal:
        return refusal
    parsed = await read_multipart(request)
    if isinstance(parsed, str):
        return error(400, parsed)
    meta, content = parsed
    errors = chunk_metadata_errors(meta)
    ctx = request.app[CTX_KEY]
    chunk_id = meta.get("chunkId")
    if not content and rules.positive_int(chunk_id) and chunk_id != 1:
        errors.append(f"the 'content' part is required for chunkId {chunk_id} (only 1 may omit it)")
    if content and len(content) > ctx.settings.max_chunk_bytes:
        errors.append(f"content of {len(content)} bytes exceeds {ctx.settings.max_chunk_bytes}")
    if errors:
        return error(400, rules.join_errors(errors))
    cid = meta["correlationId"]
    missing = session_missing(request, cid, bool(meta.get("skipAmbientSessionExistence")))
    if missing:
        return missing
    try:
        ctx.uploads.store_chunk(
            cid, meta["recordingId"], meta["chunkId"], bool(meta.get("isLast")), content or b""
        )
    except rules.RuleError as exc:
        return error(STATUS_FOR_KIND.get(exc.kind, 400), exc.message)
    log.info("chunk stored", chunk_id=chunk_id, content_bytes=len(content or b""))
    return error(200, None)


async def finalize_upload(request: web.Request) -> web.Response:
    refusal = check_auth(request) or check_api_version(request, (REST_AUDIO_API_VERSION,))
    if refusal:
        return refusal
    body = await json_body(request)
    if isinstance(body, web.Response):
        return body
    errors = rules.finalize_errors(body)
    if errors:
        return error(400, rules.join_errors(errors))
    cid = body["correlationId"]
    missing = session_missing(request, cid, body.get("skipAmbientSessionExistence") is True)
    if missing:
        return missing
    ctx = request.app[CTX_KEY]
    try:
        rec = ctx.uploads.finalize(cid, body["recordingId"], body["totalChunks"])
    except rules.RuleError as exc:
        return error(STATUS_FOR_KIND.get(exc.kind, 400), exc.message)
    log.info("finalize accepted", total_chunks=body["totalChunks"], state=rec.state)
    return error(200, None)


def add_routes(app: web.Application) -> None:
    app.router.add_put("/ambient-sessions", put_ambient_session)
    app.router.add_delete("/ambient-sessions/{correlationId}", delete_ambient_session)
    app.router.add_put("/audio/storeChunk", store_chunk)
    app.router.add_post("/audio/finalizeUpload", finalize_upload)
