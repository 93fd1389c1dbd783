"""The Corti REST API under `/v2`: interactions, recordings, transcripts, documents, templates.

Every call needs `Authorization: Bearer <token>` and `Tenant-Name` [doc]; errors are RFC 9457
bodies `{requestid, status, type, detail, validationErrors?}` [doc]. Fault injection (fail,
latency, drop the connection) applies before a handler runs.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, get_args

from aiohttp import web

from devtools.emulators.common.bodies import json_object
from devtools.emulators.corti.context import CTX, CortiContext
from devtools.emulators.corti.settings import TEMPLATES
from devtools.emulators.corti.store import AudioRejected, Interaction, inspect_audio, now
from devtools.emulators.corti.tokens import Caller, TokenRejected
from edge_recorder.config.services.corti import EncounterType
from edge_recorder.support.logs import get_logger

log = get_logger(__name__)

PREFIX = "/v2"
STATUSES = ("planned", "in-progress", "on-hold", "completed", "cancelled", "deleted")
TYPES = get_args(EncounterType)
CALLER = web.AppKey("caller", Caller)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

_SLUGS = {400: "bad-request", 401: "unauthorized", 403: "forbidden", 404: "not-found",
          413: "payload-too-large", 415: "unsupported-media-type", 500: "internal-server-error",
          503: "service-unavailable", 504: "gateway-timeout"}  # fmt: skip


def problem(status: int, detail: str, errors: list[dict[str, str]] | None = None) -> web.Response:
    body: dict[str, Any] = {
        "requestid": str(uuid.uuid4()),
        "status": status,
        "type": f"https://api.corti.app/errors/{_SLUGS.get(status, 'error')}",
        "detail": detail,
    }
    if errors:
        body["validationErrors"] = errors
    return web.json_response(body, status=status, content_type="application/problem+json")


def ctx_of(request: web.Request) -> CortiContext:
    return request.app[CTX]


@web.middleware
async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Faults, then auth, for the API (not for /_emulator, the token endpoint or /streams)."""
    if not request.path.startswith(PREFIX + "/"):
        return await handler(request)
    ctx = ctx_of(request)
    if delay := ctx.faults.take_latency_s("rest", request.path):
        await asyncio.sleep(delay)  # the injected latency itself
    if ctx.take_drop(request.path):
        log.info("fault: dropping the connection", path=request.path)
        if request.transport is not None:
            request.transport.abort()
        raise ConnectionResetError("connection dropped by fault injection")
    if fault := ctx.faults.take_failure("rest", request.path):
        return problem(fault.status, f"injected fault (HTTP {fault.status})")
    tenant = request.headers.get("Tenant-Name", "")
    if not tenant:
        return problem(401, "missing Tenant-Name header")
    if tenant != ctx.settings.tenant:
        return problem(403, f"unknown tenant {tenant!r}")
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token:
        return problem(401, "missing bearer token")
    try:
        ctx.issuer.verify(token.strip(), tenant)
    except TokenRejected as exc:
        return problem(401, str(exc))
    return await handler(request)


def interaction_of(request: web.Request) -> Interaction | None:
    ctx = ctx_of(request)
    found: Interaction | None = ctx.store.interaction(ctx.settings.tenant, request.match_info["id"])
    return found


async def create_interaction(request: web.Request) -> web.Response:
    body = await json_object(request)
    if body is None:
        return problem(400, "body must be a JSON object")
    enc = body.get("encounter")
    errors = []
    if not isinstance(enc, dict):
        errors.append({"key": "encounter", "message": "is required"})
        enc = {}
    if not isinstance(enc.get("identifier"), str) or not enc.get("identifier"):
        errors.append({"key": "encounter.identifier", "message": "is required"})
    if enc.get("status") not in STATUSES:
        errors.append({"key": "encounter.status", "message": f"must be one of {STATUSES}"})
    if enc.get("type") not in TYPES:
        errors.append({"key": "encounter.type", "message": f"must be one of {TYPES}"})
    if errors:
        return problem(400, "invalid interaction", errors)
    ctx = ctx_of(request)
    patient = body.get("patient")
    item = ctx.store.create_interaction(
        ctx.settings.tenant, enc, patient if isinstance(patient, dict) else None
    )
    ws = f"{ctx.ws_base}/interactions/{item.interactionId}/streams"
    return web.json_response({"interactionId": item.interactionId, "websocketUrl": ws}, status=201)


async def upload_recording(request: web.Request) -> web.Response:
    item = interaction_of(request)
    if item is None:
        return problem(404, "interaction not found")
    if request.content_type != "application/octet-stream":
        return problem(415, "recordings are uploaded as application/octet-stream (raw file bytes)")
    ctx = ctx_of(request)
    limit = ctx.settings.max_upload_bytes
    if request.content_length is not None and request.content_length > limit:
        return problem(413, f"recording is {request.content_length} bytes; the limit is {limit}")
    try:
        data = await request.read()
    except ConnectionResetError:  # the device went away mid-upload: nothing is stored
        return problem(400, "upload interrupted")
    try:
        fmt, offset, duration = inspect_audio(data, limit, ctx.settings.max_upload_s)
    except AudioRejected as exc:
        return problem(exc.status, str(exc))
    rec = ctx.store.add_recording(item, data, fmt, offset, duration)
    log.info("recording stored", bytes=rec.bytes, format=fmt)
    if ctx.take_drop(request.path, after_store=True):  # stored, but the answer never arrives
        log.info("fault: dropping the connection after storing", path=request.path)
        if request.transport is not None:
            request.transport.abort()
        raise ConnectionResetError("answer lost by fault injection")
    return web.json_response({"recordingId": rec.recordingId}, status=200)


async def list_recordings(request: web.Request) -> web.Response:
    item = interaction_of(request)
    if item is None:
        return problem(404, "interaction not found")
    return web.json_response({"recordings": list(item.recordings)})


async def create_transcript(request: web.Request) -> web.Response:
    item = interaction_of(request)
    if item is None:
        return problem(404, "interaction not found")
    body = await json_object(request)
    if body is None:
        return problem(400, "body must be a JSON object")
    rid, lang = body.get("recordingId"), body.get("primaryLanguage")
    errors = []
    if not isinstance(rid, str) or rid not in item.recordings:
        errors.append({"key": "recordingId", "message": "no such recording in this interaction"})
    if not isinstance(lang, str) or not lang:
        errors.append({"key": "primaryLanguage", "message": "is required"})
    if errors or not isinstance(rid, str):
        return problem(400, "invalid transcript request", errors)
    ctx = ctx_of(request)
    rec = ctx.store.recordings[rid]
    seconds = rec.durationS or 0.0
    tid = str(uuid.uuid4())
    wait = ctx.settings.transcripts_async or body.get("async") is True
    transcript: dict[str, Any] = {
        "id": tid,
        "recordingId": rid,
        "status": "processing" if wait else "completed",
        "polls": 0,
        "createdAt": now(),
        "metadata": {"participantsRoles": []},
        "usageInfo": {"creditsConsumed": round(seconds / 60, 3)},
        "transcripts": [
            {"channel": 0, "participant": 0, "speakerId": 0, "start": 0,
             "end": int(seconds * 1000),
             "text": f"[emulated transcript of {seconds:.1f} s of {rec.format} audio]"}
        ],
    }  # fmt: skip
    item.transcripts[tid] = transcript
    ctx.store.save()
    if wait:
        return web.json_response(
            {"id": tid, "recordingId": rid, "status": "processing"}, status=202
        )
    return web.json_response(_public(transcript), status=200)


def _public(transcript: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in transcript.items() if k not in ("polls", "createdAt")}


async def transcript_status(request: web.Request) -> web.Response:
    item = interaction_of(request)
    transcript = item.transcripts.get(request.match_info["tid"]) if item else None
    if transcript is None:
        return problem(404, "transcript not found")
    ctx = ctx_of(request)
    if transcript["status"] == "processing":
        transcript["polls"] += 1
        if transcript["polls"] > ctx.settings.async_polls:
            transcript["status"] = "completed"
        ctx.store.save()
    return web.json_response({"status": transcript["status"]})


async def get_transcript(request: web.Request) -> web.Response:
    item = interaction_of(request)
    transcript = item.transcripts.get(request.match_info["tid"]) if item else None
    if transcript is None:
        return problem(404, "transcript not found")
    body = _public(transcript)
    if transcript["status"] != "completed":
        body["transcripts"] = []
    return web.json_response(body)


async def create_document(request: web.Request) -> web.Response:
    item = interaction_of(request)
    if item is None:
        return problem(404, "interaction not found")
    body = await json_object(request)
    if body is None:
        return problem(400, "body must be a JSON object")
    key, context = body.get("templateKey"), body.get("context")
    errors = []
    if key not in TEMPLATES:
        errors.append({"key": "templateKey", "message": f"unknown template {key!r}"})
    texts = [
        c.get("data", {}).get("text")
        for c in context if isinstance(c, dict) and c.get("type") == "transcript"
    ] if isinstance(context, list) else []  # fmt: skip
    if not texts or not all(isinstance(t, str) for t in texts):
        errors.append({"key": "context", "message": "needs a transcript entry with data.text"})
    if errors:
        return problem(400, "invalid document request", errors)
    name, sections = TEMPLATES[str(key)]
    did = str(uuid.uuid4())
    words = sum(len(str(t).split()) for t in texts)
    stamp = now()
    document = {
        "id": did,
        "name": name,
        "templateRef": key,
        "isStream": False,
        "outputLanguage": body.get("outputLanguage") or "en",
        "sections": [
            {"key": k, "name": n, "text": f"[emulated {n.lower()} from {words} words]", "sort": i,
             "createdAt": stamp, "updatedAt": stamp}
            for i, (k, n) in enumerate(sections)
        ],
        "createdAt": stamp,
        "updatedAt": stamp,
        "usageInfo": {"creditsConsumed": round(words / 1000, 3)},
    }  # fmt: skip
    item.documents[did] = document
    ctx_of(request).store.save()
    return web.json_response(document, status=200)


async def templates(request: web.Request) -> web.Response:
    return web.json_response({"data": [template_item(k) for k in TEMPLATES]})


def template_item(key: str) -> dict[str, Any]:
    """A template as Corti's API types describe it (`TemplatesItem`)."""
    name, sections = TEMPLATES[key]
    return {
        "key": key,
        "name": name,
        "description": f"[emulated] {name}",
        "status": "published",
        "updatedAt": None,
        "templateSections": [
            {
                "sort": i,
                "section": {
                    "key": s,
                    "name": n,
                    "description": f"[emulated] {n}",
                    "type": "text",
                    "defaultWritingStyle": {"name": "bullet points"},
                    "translations": [],
                },
            }
            for i, (s, n) in enumerate(sections)
        ],
        "translations": [],
    }


def add_routes(app: web.Application) -> None:
    r = app.router
    r.add_post(PREFIX + "/interactions/", create_interaction)
    r.add_post(PREFIX + "/interactions/{id}/recordings/", upload_recording)
    r.add_get(PREFIX + "/interactions/{id}/recordings/", list_recordings)
    r.add_post(PREFIX + "/interactions/{id}/transcripts/", create_transcript)
    r.add_get(PREFIX + "/interactions/{id}/transcripts/{tid}/status", transcript_status)
    r.add_get(PREFIX + "/interactions/{id}/transcripts/{tid}", get_transcript)
    r.add_post(PREFIX + "/interactions/{id}/documents/", create_document)
    r.add_get(PREFIX + "/templates/", templates)
