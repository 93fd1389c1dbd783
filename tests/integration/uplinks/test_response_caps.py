"""Every answer the device reads from a service is capped (issue #19 item 4).

Real local servers (aiohttp, grpc.aio on 127.0.0.1) answer far more than any healthy service
would: HTTP bodies of 50 MB streamed in 64 KiB pieces (chunked, or with a true Content-Length),
so the test itself never holds them, and stream messages just over their cap (but under the
limits the clients had before). Each must end in a retryable PROTOCOL `UplinkError` that says
what was too large, without the device reading (or allocating) the whole answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import tracemalloc
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import grpc
import pytest
from aiohttp import WSMsgType, web
from grpc import aio

from edge_recorder.config.services.dice import DiceConfig
from edge_recorder.uplinks.aas.grpc_stream import AasGrpcClient
from edge_recorder.uplinks.aas.rest import AasRestClient
from edge_recorder.uplinks.aas.websocket import AasWebSocketClient
from edge_recorder.uplinks.aas.ws_framing import format_text_frame
from edge_recorder.uplinks.auth import ClientCredentialsProvider, StaticTokenProvider
from edge_recorder.uplinks.base import (
    DataFormat,
    ErrorKind,
    RecordingRef,
    SessionIdentity,
    Transport,
    UplinkError,
)
from edge_recorder.uplinks.bundle import MemoryState
from edge_recorder.uplinks.corti.rest import CortiRest
from edge_recorder.uplinks.corti.stream import CortiStream
from edge_recorder.uplinks.dice.client import DiceClient
from edge_recorder.uplinks.dice.tokens import PasswordGrantTokens
from edge_recorder.uplinks.limits import MIB

HUGE = 50 * 1000 * 1000  # bytes a broken endpoint answers over HTTP
PIECE = b" " * (64 * 1024)  # JSON whitespace: the huge bodies stay valid JSON
MEMORY_BOUND = 8 * MIB  # Python allocations allowed while the device meets such an answer
SESSION = SessionIdentity(
    "enc-caps", customer_id="c", partner_id="p", product_id="pr", external_user_id="u"
)


# ---------------------------------------------------------------------------------------------
# Servers


class HugeAnswer:
    """An aiohttp handler answering `status` with `prefix`, ~50 MB of padding, `suffix`,
    written piece by piece; counts what it managed to send before the client hung up."""

    def __init__(
        self, prefix: bytes, suffix: bytes, *, status: int = 200, declare: bool = False
    ) -> None:
        self.prefix, self.suffix, self.status, self.declare = prefix, suffix, status, declare
        self.sent = 0
        self.done = asyncio.Event()

    async def handle(self, request: web.Request) -> web.StreamResponse:
        await request.read()
        resp = web.StreamResponse(status=self.status)
        resp.content_type = "application/json"
        if self.declare:  # a true Content-Length; otherwise chunked
            resp.content_length = HUGE
        await resp.prepare(request)
        try:
            await resp.write(self.prefix)
            padding = HUGE - len(self.prefix) - len(self.suffix)
            while self.sent < padding:
                piece = PIECE[: padding - self.sent]
                await resp.write(piece)
                self.sent += len(piece)
            await resp.write(self.suffix)
            await resp.write_eof()
        except ConnectionError:
            pass  # the device hung up: what this test wants
        finally:
            self.done.set()
        return resp

    async def hung_up_early(self) -> bool:
        await asyncio.wait_for(self.done.wait(), 10.0)
        return self.sent < HUGE // 2


@contextlib.asynccontextmanager
async def serve(*routes: web.RouteDef) -> AsyncIterator[str]:
    """An aiohttp server on 127.0.0.1; yields its base URL (http://...)."""
    app = web.Application()
    app.add_routes(routes)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    try:
        yield f"http://{host}:{port}"
    finally:
        await runner.cleanup()


def ws_sending(text: str) -> Callable[[web.Request], Awaitable[web.WebSocketResponse]]:
    """A WebSocket handler that sends `text` (after the client's first message on the Corti
    and Dice streams, which speak first), then waits for the client to go."""

    async def handler(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        if request.path.endswith("/streams") or request.path == "/dice":
            await ws.receive()  # the client's configuration / stream request comes first
        await ws.send_str(text)
        async for msg in ws:
            if msg.type == WSMsgType.CLOSE:
                break
        return ws

    return handler


# ---------------------------------------------------------------------------------------------
# Checks


@contextlib.contextmanager
def traced_peak() -> Iterator[list[int]]:
    """The peak of Python allocations made inside the block (bytes), in `box[0]` after it."""
    box = [0]
    tracemalloc.start()
    try:
        yield box
    finally:
        box[0] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()


async def refused(call: Awaitable[Any]) -> UplinkError:
    with pytest.raises(UplinkError) as info:
        await call
    return info.value


def assert_too_large(err: UplinkError, transport: Transport, cap: str) -> None:
    assert (err.kind, err.transport, err.retryable) == (ErrorKind.PROTOCOL, transport, True), err
    assert f"is larger than {cap}, the device's limit" in err.message, err.message


# ---------------------------------------------------------------------------------------------
# HTTP bodies


@pytest.mark.parametrize("declare", [False, True], ids=["chunked", "content-length"])
async def test_huge_token_answer_is_refused_without_reading_it(declare: bool) -> None:
    handler = HugeAnswer(b'{"access_token": "t", "expires_in": 300', b"}", declare=declare)
    async with serve(web.post("/token", handler.handle)) as base:
        tokens = ClientCredentialsProvider(f"{base}/token", "device", lambda: "secret")
        try:
            with traced_peak() as peak:
                err = await refused(tokens.token())
        finally:
            await tokens.aclose()
        assert await handler.hung_up_early()
    assert_too_large(err, "auth", "64 KiB")
    assert "token endpoint" in err.message
    if declare:
        assert "(it declared 47.7 MiB)" in err.message
    assert peak[0] < MEMORY_BOUND, f"{peak[0] / MIB:.1f} MiB allocated"


async def test_huge_dice_sign_in_answer_is_refused() -> None:
    handler = HugeAnswer(b'{"access_token": "t", "refresh_token": "r"', b"}")
    async with serve(web.post("/token", handler.handle)) as base:
        tokens = PasswordGrantTokens(f"{base}/token", "user", lambda: "password")
        try:
            err = await refused(tokens.token())
        finally:
            await tokens.aclose()
        assert await handler.hung_up_early()
    assert_too_large(err, "auth", "64 KiB")
    assert "dice sign-in" in err.message


async def test_huge_aas_rest_answer_is_refused() -> None:
    handler = HugeAnswer(b'{"result": "ok"', b"}")
    async with serve(web.put("/ambient-sessions", handler.handle)) as base:
        client = AasRestClient(base, StaticTokenProvider(lambda: "t"))
        try:
            with traced_peak() as peak:
                err = await refused(client.create_session(SESSION))
        finally:
            await client.aclose()
        assert await handler.hung_up_early()
    assert_too_large(err, "rest", "1 MiB")
    assert "PUT /ambient-sessions" in err.message
    assert peak[0] < MEMORY_BOUND, f"{peak[0] / MIB:.1f} MiB allocated"


async def test_huge_error_page_is_truncated_and_keeps_its_status() -> None:
    """An error answer is read only for its first 64 KiB: the status still decides the kind."""
    handler = HugeAnswer(b'{"error": "overloaded"', b"}", status=503)
    async with serve(web.put("/ambient-sessions", handler.handle)) as base:
        client = AasRestClient(base, StaticTokenProvider(lambda: "t"))
        try:
            with traced_peak() as peak:
                err = await refused(client.create_session(SESSION))
        finally:
            await client.aclose()
        assert await handler.hung_up_early()
    assert (err.kind, err.status, err.retryable) == (ErrorKind.UNAVAILABLE, 503, True)
    assert err.message.startswith('{"error": "overloaded"')  # a snippet, not the page
    assert len(err.message) <= 300
    assert peak[0] < MEMORY_BOUND, f"{peak[0] / MIB:.1f} MiB allocated"


async def test_huge_corti_answer_is_refused() -> None:
    handler = HugeAnswer(b'{"data": []', b"}")
    async with serve(web.get("/templates/", handler.handle)) as base:
        client = CortiRest(base, "tenant", StaticTokenProvider(lambda: "t"))
        try:
            with traced_peak() as peak:
                err = await refused(client.templates())
        finally:
            await client.aclose()
        assert await handler.hung_up_early()
    assert_too_large(err, "rest", "8 MiB")
    assert "GET /templates/" in err.message
    assert peak[0] < 2 * MEMORY_BOUND, f"{peak[0] / MIB:.1f} MiB allocated"


# ---------------------------------------------------------------------------------------------
# Stream messages: each just over its cap, and under what the clients accepted before


async def test_oversized_aas_websocket_message_is_refused() -> None:
    answer = format_text_frame("RetrieveConfiguration", {"maxChunkBytes": 1, "pad": "x" * MIB})
    async with serve(web.get("/ws/retrieveConfiguration", ws_sending(answer))) as base:
        client = AasWebSocketClient(base.replace("http", "ws", 1), StaticTokenProvider(lambda: "t"))
        try:
            err = await refused(client.retrieve_configuration(SESSION))
        finally:
            await client.aclose()
    assert_too_large(err, "websocket", "1 MiB")
    assert "AAS WebSocket" in err.message


async def test_oversized_grpc_message_is_refused() -> None:
    # A valid RetrieveConfigurationResponse: field 15 is unknown to it, so it parses.
    pad = 2 * MIB
    answer = bytes([15 << 3 | 2]) + _varint(pad) + b"x" * pad

    async def retrieve(request: bytes, context: Any) -> bytes:
        return answer

    handler = grpc.method_handlers_generic_handler(
        "ambient.audio.v1.AudioStreamingService",
        {"RetrieveConfiguration": grpc.unary_unary_rpc_method_handler(retrieve)},
    )
    server = aio.server()
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    client = AasGrpcClient(f"127.0.0.1:{port}", StaticTokenProvider(lambda: "t"))
    try:
        err = await refused(client.retrieve_configuration(SESSION))
    finally:
        await client.aclose()
        await server.stop(None)
    assert_too_large(err, "grpc", "1 MiB")
    assert err.status == "RESOURCE_EXHAUSTED"


async def test_oversized_corti_stream_message_is_refused() -> None:
    answer = json.dumps({"type": "CONFIG_ACCEPTED", "pad": "x" * (2 * MIB)})
    async with serve(web.get("/streams", ws_sending(answer))) as base:
        opened: CortiStream | None = None

        async def open_stream() -> None:
            nonlocal opened
            url = base.replace("http", "ws", 1) + "/streams"
            opened = await CortiStream.open(url, {}, bytes_per_second=32000, timeout_s=5.0)

        try:
            err = await refused(open_stream())
        finally:
            if opened is not None:
                await opened.aclose()
    assert_too_large(err, "websocket", "1 MiB")
    assert "Corti stream" in err.message


async def test_oversized_dice_stream_message_is_refused() -> None:
    answer = json.dumps({"object": "transcript_item", "pad": "x" * (8 * MIB)})
    async with serve(web.get("/dice", ws_sending(answer))) as base:
        config = DiceConfig(
            url=base.replace("http", "ws", 1) + "/dice",
            token_url=f"{base}/token",
            username="user",
        )
        client = DiceClient(
            config,
            StaticTokenProvider(lambda: "t"),
            MemoryState(),
            request_timeout_s=5.0,
            connect_timeout_s=2.0,
        )
        try:
            err = await refused(
                client.open_recording(
                    SessionIdentity.local("enc-caps"), RecordingRef.new(1), DataFormat()
                )
            )
        finally:
            await client.aclose()
    assert_too_large(err, "websocket", "8 MiB")
    assert "Dice stream" in err.message


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)
