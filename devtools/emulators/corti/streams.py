"""`/audio-bridge/v2/interactions/{id}/streams`: Corti's real-time WebSocket.

[doc] auth in the query (`tenant-name`, `token=Bearer <jwt>`); the first message must be
`{"type":"config","configuration":{…}}` within 10 s, answered `CONFIG_ACCEPTED` (or
`CONFIG_DENIED|CONFIG_MISSING|CONFIG_NOT_PROVIDED|CONFIG_ALREADY_RECEIVED`); then binary audio;
`flush` → `flushed`; `end` → `usage`, then `ENDED` and close. Server messages `transcript`,
`facts`, `usage`, `error`.
[checked] Corti's own SDK (`@corti/sdk` 1.0.0, `tests/contract/corti_stream.mjs`) drives this
endpoint: URL, query auth, config, binary audio, `flush`, `end`, and every server message must
fit the SDK's own type for it (`StreamSocketResponse`). After `ENDED` the close code is 1000: the
SDK reconnects (and re-sends its config) after any other code.
[inferred] The emulator keeps a stream's byte count and hash for inspection but does NOT turn
streamed audio into a recording of the interaction: the device still uploads every recording.
[inferred] `CONFIG_TIMEOUT` (after `config_timeout_s`): the SDK's `/transcribe` enum has it, but
for `/streams` only its comments name it (`StreamConfigStatusMessageType` does not list it).
In `facts` mode a `facts` message follows each `transcript`; the texts are placeholders.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import uuid
from typing import Any

from aiohttp import WSMsgType, web

from devtools.emulators.corti.api import problem
from devtools.emulators.corti.context import CTX
from devtools.emulators.corti.store import now
from devtools.emulators.corti.tokens import TokenRejected

TRANSCRIPT_EVERY = 32000  # bytes of audio between emulated transcript messages
BYTES_PER_S = 32000  # 16 kHz PCM16 mono: the emulated transcript's clock


def transcript_message(start_s: float, end_s: float) -> dict[str, Any]:
    """A `transcript` message as Corti's stream types describe it (`StreamTranscriptMessage`)."""
    return {
        "type": "transcript",
        "data": [
            {
                "id": str(uuid.uuid4()),
                "transcript": "[emulated]",
                "final": True,
                "speakerId": 0,
                "participant": {"channel": 0},
                "time": {"start": round(start_s, 3), "end": round(end_s, 3)},
            }
        ],
    }


def facts_message() -> dict[str, Any]:
    """A `facts` message as Corti's stream types describe it (`StreamFactsMessage`)."""
    return {
        "type": "facts",
        "fact": [
            {
                "id": str(uuid.uuid4()),
                "text": "[emulated fact]",
                "group": "other",
                "groupId": str(uuid.uuid4()),
                "isDiscarded": False,
                "source": "core",
                "createdAt": now(),
            }
        ],
    }


def error_message(status: int, title: str, details: str) -> dict[str, Any]:
    """An `error` message as Corti's stream types describe it (`StreamErrorMessage`)."""
    return {
        "type": "error",
        "error": {
            "id": str(uuid.uuid4()),
            "title": title,
            "status": status,
            "details": details,
            "doc": "https://docs.corti.ai/",
        },
    }


def config_problem(message: Any) -> str | None:
    """The CONFIG_* answer for a config message, or None when it is accepted."""
    if not isinstance(message, dict) or message.get("type") != "config":
        return "CONFIG_NOT_PROVIDED"
    conf = message.get("configuration")
    if not isinstance(conf, dict):
        return "CONFIG_MISSING"
    transcription, mode = conf.get("transcription"), conf.get("mode")
    if not isinstance(transcription, dict) or not transcription.get("primaryLanguage"):
        return "CONFIG_DENIED"
    if not isinstance(mode, dict) or mode.get("type") not in ("facts", "transcription"):
        return "CONFIG_DENIED"
    return None


async def stream(request: web.Request) -> web.StreamResponse:
    ctx = request.app[CTX]
    tenant = request.query.get("tenant-name", "")
    scheme, _, token = request.query.get("token", "").partition(" ")
    if tenant != ctx.settings.tenant:
        return problem(403, f"unknown tenant {tenant!r}")
    if scheme.lower() != "bearer" or not token:
        return problem(401, "token query parameter must be 'Bearer <jwt>'")
    try:
        ctx.issuer.verify(token.strip(), tenant)
    except TokenRejected as exc:
        return problem(401, str(exc))
    item = ctx.store.interaction(tenant, request.match_info["id"])
    if item is None:
        return problem(404, "interaction not found")
    if fault := ctx.faults.take_failure("ws", request.path):
        return problem(fault.status, f"injected fault (HTTP {fault.status})")
    drop_after = ctx.faults.take_drop("ws", request.path)
    ws = web.WebSocketResponse(heartbeat=None, max_msg_size=4 * 1024 * 1024)
    await ws.prepare(request)
    record: dict[str, Any] = {"streamId": str(uuid.uuid4()), "bytes": 0, "sha256": "",
                              "configured": False, "ended": False, "flushes": 0,
                              "startedAt": now()}  # fmt: skip
    item.streams.append(record)
    digest = hashlib.sha256()
    try:
        await _serve(ws, ctx.settings.config_timeout_s, record, digest, drop_after)
    finally:
        record["sha256"] = digest.hexdigest()
        ctx.store.save()
        if not ws.closed:
            await ws.close()
    return ws


async def _serve(ws: web.WebSocketResponse, config_timeout_s: float, record: dict[str, Any],
                 digest: Any, drop_after: int | None) -> None:  # fmt: skip
    try:
        async with asyncio.timeout(config_timeout_s):
            first = await ws.receive()
    except TimeoutError:
        await ws.send_json({"type": "CONFIG_TIMEOUT", "reason": "no config message in time"})
        return
    message: Any = None
    if first.type == WSMsgType.TEXT:
        with contextlib.suppress(ValueError):
            message = json.loads(first.data)
    elif first.type != WSMsgType.BINARY:
        return
    answer = config_problem(message)
    if answer is not None:
        await ws.send_json({"type": answer, "reason": "invalid or missing configuration"})
        return
    record["configured"] = True
    facts = message["configuration"]["mode"]["type"] == "facts"
    await ws.send_json({"type": "CONFIG_ACCEPTED"})
    since_transcript = 0
    async for msg in ws:
        if msg.type == WSMsgType.BINARY:
            data: bytes = msg.data
            digest.update(data)
            record["bytes"] += len(data)
            since_transcript += len(data)
            if drop_after is not None and record["bytes"] >= drop_after:
                if ws._req is not None and ws._req.transport is not None:
                    ws._req.transport.abort()
                return
            if since_transcript >= TRANSCRIPT_EVERY:
                since_transcript = 0
                end_s = record["bytes"] / BYTES_PER_S
                await ws.send_json(
                    transcript_message(end_s - TRANSCRIPT_EVERY / BYTES_PER_S, end_s)
                )
                if facts:
                    await ws.send_json(facts_message())
            continue
        if msg.type != WSMsgType.TEXT:
            break
        try:
            control = json.loads(msg.data)
        except ValueError:
            await ws.send_json(error_message(400, "malformed JSON message", "not JSON"))
            continue
        kind = control.get("type") if isinstance(control, dict) else None
        if kind == "config":
            await ws.send_json({"type": "CONFIG_ALREADY_RECEIVED"})
        elif kind == "flush":
            record["flushes"] += 1
            await ws.send_json({"type": "flushed"})
        elif kind == "end":
            await ws.send_json({"type": "usage", "credits": round(record["bytes"] / 1_920_000, 4)})
            record["ended"] = True
            await ws.send_json({"type": "ENDED"})
            return
        else:
            await ws.send_json(error_message(400, "unknown message type", f"unknown type {kind!r}"))


def add_routes(app: web.Application) -> None:
    app.router.add_get("/audio-bridge/v2/interactions/{id}/streams", stream)
