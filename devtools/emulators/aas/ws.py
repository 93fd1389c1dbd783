"""WebSocket front: `/ws` (RecordAmbient), `/ws/retrieveConfiguration`, `/ws/startProcessing`.

Framing [client]: a text frame is `Path=<name>\\r\\nX-MS-Request-Id=<uuid>\\r\\nX-Timestamp=<ISO>`
`\\r\\n\\r\\n<JSON>`; a DataChunk is a *binary* frame whose bytes are JSON
`{"DataStart": N, "Data": "<base64>"}`. The JSON is the proto3 JSON mapping of the gRPC
messages. An invalid RecordingOpen ends in a close with no message [client]. Other refusals
close with an application code 4000 + the HTTP-like status and a short reason (RECONSTRUCTED:
4400 invalid, 4404 unknown, 4409 conflict or wrong state, 4416 gap, 4503 injected fault).
"""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

from aiohttp import WSMsgType, web
from google.protobuf import json_format
from google.protobuf.message import Message

from devtools.emulators.aas import core, rules
from devtools.emulators.aas.auth import AuthError
from devtools.emulators.aas.rest import CTX_KEY, error
from devtools.emulators.aas.store import now_iso
from edge_recorder._proto.ambient.audio.v1 import audio_streaming_pb2 as pb
from edge_recorder.support.logs import get_logger

log = get_logger(__name__)
WS_API_VERSION = "1"
CLOSE_FOR_KIND = {"invalid": 4400, "not_found": 4404, "conflict": 4409, "state": 4409, "gap": 4416}


def parse_text_frame(text: str) -> tuple[dict[str, str], str]:
    """(headers, JSON text) of a text frame; a frame without a header block has no headers."""
    for sep in ("\r\n\r\n", "\n\n"):
        head, found, body = text.partition(sep)
        if found and "=" in head.split("\n", 1)[0] and not head.lstrip().startswith("{"):
            headers = {}
            for line in head.splitlines():
                key, _, value = line.partition("=")
                headers[key.strip().lower()] = value.strip()
            return headers, body
    return {}, text


def text_frame(path: str, payload: dict[str, Any], request_id: str, header_block: bool) -> str:
    body = json.dumps(payload, separators=(",", ":"))
    if not header_block:
        return body
    return f"Path={path}\r\nX-MS-Request-Id={request_id}\r\nX-Timestamp={now_iso()}\r\n\r\n{body}"


def _parse(text: str, message: Message) -> Message:
    """Proto3 JSON into `message`; ValueError when it does not convert."""
    try:
        json_format.Parse(text, message)
    except json_format.ParseError as exc:
        raise ValueError(str(exc)) from None
    return message


APP_ONLY = web.RequestKey("app_only", bool)  # the upgrade's token is app-only


async def _upgrade(
    request: web.Request, needs_customer: bool
) -> web.WebSocketResponse | web.Response:
    """Faults, api-version and auth on the upgrade request; the prepared socket or a refusal."""
    ctx = request.app[CTX_KEY]
    path = request.path
    delay = ctx.faults.take_latency_s("ws", path)
    if delay:
        await asyncio.sleep(delay)
    fault = ctx.faults.take_failure("ws", path)
    if fault is not None:
        return error(fault.status, f"injected fault: {fault.status}")
    if request.query.get("api-version") != WS_API_VERSION:
        return error(
            400, "api-version query parameter must be 1", **{"api-supported-versions": "1"}
        )
    offered = [p.strip() for p in request.headers.get("Sec-WebSocket-Protocol", "").split(",")]
    offered = [p for p in offered if p]
    header = request.headers.get("Authorization")
    from_protocol = next((p for p in offered if p.count(".") == 2), None)
    if not header and from_protocol:
        header = f"Bearer {from_protocol}"
    try:
        identity = ctx.issuer.verify_header(header)
    except AuthError as exc:
        if exc.allow_list:
            return error(ctx.settings.not_allowlisted_status, exc.message)
        return web.Response(status=401, text=f"Unauthorized: {exc.message}")
    if needs_customer and not request.headers.get("customer-id"):
        return error(400, "customer-id header is required")
    user = request.headers.get("user-guid") or request.headers.get("external-user-id")
    if identity.app_only and not user:
        return error(403, "user-guid or external-user-id header is required with an S2S token")
    names = [p for p in offered if p != from_protocol] or offered
    # base64 inflates a chunk by 4/3; leave room for the JSON around it
    max_size = ctx.settings.max_chunk_bytes * 2 + 64 * 1024
    ws = web.WebSocketResponse(protocols=tuple(names[:1]), max_msg_size=max_size)
    await ws.prepare(request)
    request[APP_ONLY] = identity.app_only
    return ws


async def _close(ws: web.WebSocketResponse, code: int, reason: str) -> None:
    await ws.close(code=code, message=reason.encode()[:120])


async def record(request: web.Request) -> web.StreamResponse:
    ws = await _upgrade(request, needs_customer=True)
    if not isinstance(ws, web.WebSocketResponse):
        return ws
    ctx = request.app[CTX_KEY]
    live = ctx.settings.fidelity == "live"
    if live and request[APP_ONLY]:
        # Observed live: "silent, indefinite non-response" to app-only tokens (a delegated
        # user token works). Everything sent is read and ignored; nothing is kept.
        async for _ in ws:
            pass
        return ws
    user = request.headers.get("user-guid") or request.headers.get("external-user-id") or ""
    stream = core.RecordStream(ctx, "ws", user, ctx.faults.take_drop("ws", request.path))
    blocks = ctx.settings.ws_header_blocks and not live  # live messages carry no Path= block
    request_id = str(uuid.uuid4())
    try:
        async for msg in ws:
            if msg.type == WSMsgType.TEXT:
                headers, body = parse_text_frame(msg.data)
                path = headers.get("path", "").lower()
                request_id = headers.get("x-ms-request-id", request_id)
                if not stream.opened:
                    try:
                        if path and path != "recordingopen":
                            raise ValueError(f"expected RecordingOpen, got {path}")
                        open_req = _parse(body, pb.RecordingOpenRequest())
                        assert isinstance(open_req, pb.RecordingOpenRequest)
                        opens = stream.open(open_req)
                    except (ValueError, rules.RuleError) as exc:
                        reason = getattr(exc, "message", str(exc))
                        log.info("websocket open refused", reason=reason)
                        await ws.close(code=1008)
                        break
                    if live:
                        continue  # no public client has ever seen a recordingOpens answer
                    payload = {
                        "recordingOpens": {
                            "recordingId": opens.recording_id,
                            "dataStored": opens.data_stored,
                            "sequenceNumber": opens.sequence_number,
                        }
                    }
                    await ws.send_str(text_frame("recordingOpens", payload, request_id, blocks))
                elif path in ("recordingclose", ""):
                    close_req = _parse(body, pb.RecordingCloseRequest())
                    assert isinstance(close_req, pb.RecordingCloseRequest)
                    closes = stream.close(close_req)
                    payload = {"recordingCloses": {"dataStored": closes.data_stored}}
                    await ws.send_str(text_frame("recordingCloses", payload, request_id, blocks))
                    await ws.close(code=1000)
                    break
                else:
                    raise rules.RuleError(f"unexpected text frame Path={path}")
            elif msg.type == WSMsgType.BINARY:
                try:
                    chunk = _parse(msg.data.decode("utf-8"), pb.DataChunkRequest())
                except (ValueError, UnicodeDecodeError):
                    if not live:
                        raise
                    await ws.close(code=1007, message=b"Invalid DataChunk received")  # observed
                    break
                assert isinstance(chunk, pb.DataChunkRequest)
                stored = stream.chunk(chunk)
                payload = {"dataStored": {"dataStored": stored.data_stored}}
                await ws.send_str(text_frame("dataStored", payload, request_id, blocks))
            elif msg.type == WSMsgType.ERROR:
                break
    except rules.RuleError as exc:
        await _close(ws, CLOSE_FOR_KIND.get(exc.kind, 4400), exc.message)
    except (ValueError, UnicodeDecodeError) as exc:
        await _close(ws, 4400, f"malformed frame: {exc}")
    except core.StreamDropped:
        log.info("websocket dropped by fault", received_bytes=stream.received)
        if request.transport is not None:
            request.transport.abort()
    finally:
        stream.finish()
    return ws


async def retrieve_configuration(request: web.Request) -> web.StreamResponse:
    """Answers on connect (no request message needed), then closes."""
    ws = await _upgrade(request, needs_customer=False)
    if not isinstance(ws, web.WebSocketResponse):
        return ws
    ctx = request.app[CTX_KEY]
    answer = json_format.MessageToDict(core.retrieve_configuration(ctx.settings))
    request_id = str(uuid.uuid4())
    frame = text_frame("retrieveConfiguration", answer, request_id, ctx.settings.ws_header_blocks)
    await ws.send_str(frame)
    await ws.close(code=1000)
    return ws


async def start_processing(request: web.Request) -> web.StreamResponse:
    ws = await _upgrade(request, needs_customer=True)
    if not isinstance(ws, web.WebSocketResponse):
        return ws
    ctx = request.app[CTX_KEY]
    msg = await ws.receive()
    try:
        if msg.type != WSMsgType.TEXT:
            raise rules.RuleError("expected a StartProcessing text frame")
        headers, body = parse_text_frame(msg.data)
        req = _parse(body, pb.StartProcessingRequest())
        assert isinstance(req, pb.StartProcessingRequest)
        answer = core.start_processing(ctx, req)
    except ValueError as exc:
        await _close(ws, 4400, f"malformed StartProcessing: {exc}")
        return ws
    except rules.RuleError as exc:
        await _close(ws, CLOSE_FOR_KIND.get(exc.kind, 4400), exc.message)
        return ws
    payload = {
        "correlationId": answer.correlation_id,
        "recordingCount": answer.recording_count,
        "totalBytes": answer.total_bytes,
    }
    request_id = headers.get("x-ms-request-id", str(uuid.uuid4()))
    frame = text_frame("startProcessing", payload, request_id, ctx.settings.ws_header_blocks)
    await ws.send_str(frame)
    await ws.close(code=1000)
    return ws


def add_routes(app: web.Application) -> None:
    app.router.add_get("/ws", record)
    app.router.add_get("/ws/retrieveConfiguration", retrieve_configuration)
    app.router.add_get("/ws/startProcessing", start_processing)
