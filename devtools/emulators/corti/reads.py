"""The Corti emulator's read endpoints, shaped as Corti's API types (`@corti/sdk`) describe
them: an interaction and the interaction list, recording download, transcript and document
lists, a document by id. Nothing here changes state."""

from __future__ import annotations

import uuid
from typing import Any

from aiohttp import web

from devtools.emulators.corti.api import PREFIX, ctx_of, interaction_of, problem
from devtools.emulators.corti.context import CortiContext
from devtools.emulators.corti.store import Interaction


def interaction_view(ctx: CortiContext, item: Interaction) -> dict[str, Any]:
    """`InteractionsGetResponse`."""
    enc = item.encounter
    period = enc.get("period") if isinstance(enc.get("period"), dict) else None
    return {
        "id": item.interactionId,
        # The user the token was issued to; the emulator has one client, hence one user.
        "assignedUserId": str(uuid.uuid5(uuid.NAMESPACE_URL, ctx.settings.client_id)),
        "encounter": {
            "identifier": enc.get("identifier", ""),
            "status": enc.get("status", "planned"),
            "type": enc.get("type", "first_consultation"),
            "period": period or {"startedAt": item.createdAt},
            "title": enc.get("title"),
        },
        "patient": {"identifier": "", **item.patient},
        "endedAt": None,
        "createdAt": item.createdAt,
        "updatedAt": item.createdAt,
        "lastUpdated": item.createdAt,
        "websocketUrl": f"{ctx.ws_base}/interactions/{item.interactionId}/streams",
    }


async def get_interaction(request: web.Request) -> web.Response:
    item = interaction_of(request)
    if item is None:
        return problem(404, "interaction not found")
    return web.json_response(interaction_view(ctx_of(request), item))


async def list_interactions(request: web.Request) -> web.Response:
    ctx = ctx_of(request)
    try:
        size = max(1, min(int(request.query.get("pageSize", "10")), 100))
        index = max(1, int(request.query.get("index", "1")))
    except ValueError:
        return problem(400, "pageSize and index must be integers")
    mine = sorted(
        (i for i in ctx.store.interactions.values() if i.tenant == ctx.settings.tenant),
        key=lambda i: i.createdAt,
    )
    page = mine[(index - 1) * size : index * size]
    return web.json_response({"interactions": [interaction_view(ctx, i) for i in page]})


async def download_recording(request: web.Request) -> web.StreamResponse:
    item = interaction_of(request)
    rid = request.match_info["rid"]
    if item is None or rid not in item.recordings:
        return problem(404, "recording not found")
    return web.Response(
        body=ctx_of(request).store.raw(rid), content_type="application/octet-stream"
    )


async def list_transcripts(request: web.Request) -> web.Response:
    item = interaction_of(request)
    if item is None:
        return problem(404, "interaction not found")
    listed = [
        {"id": t["id"], "transcriptSample": " ".join(x["text"] for x in t["transcripts"])[:200]}
        for t in item.transcripts.values()
    ]
    return web.json_response({"transcripts": listed})


async def get_document(request: web.Request) -> web.Response:
    item = interaction_of(request)
    document = item.documents.get(request.match_info["did"]) if item else None
    if document is None:
        return problem(404, "document not found")
    return web.json_response(document)


async def list_documents(request: web.Request) -> web.Response:
    item = interaction_of(request)
    if item is None:
        return problem(404, "interaction not found")
    return web.json_response({"data": list(item.documents.values())})


def add_routes(app: web.Application) -> None:
    r = app.router
    r.add_get(PREFIX + "/interactions/", list_interactions)
    r.add_get(PREFIX + "/interactions/{id}", get_interaction)
    r.add_get(PREFIX + "/interactions/{id}/recordings/{rid}", download_recording)
    r.add_get(PREFIX + "/interactions/{id}/transcripts/", list_transcripts)
    r.add_get(PREFIX + "/interactions/{id}/documents/", list_documents)
    r.add_get(PREFIX + "/interactions/{id}/documents/{did}", get_document)
