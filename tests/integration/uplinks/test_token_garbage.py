"""A token endpoint answering garbage with 200 (issue #19 item 8).

Bytes that are not UTF-8 used to escape the token provider as a UnicodeDecodeError; the
delivery engine's guard then restarted the task every `retry_initial_s` (84 token requests in
25 s) with an empty `last_error`. Every malformed answer must be a retryable PROTOCOL
`UplinkError` from transport "auth", so the engine backs off and says what is wrong.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web

from edge_recorder.delivery.engine import DeliveryEngine
from edge_recorder.spool import Spool
from edge_recorder.uplinks.auth import ClientCredentialsProvider
from edge_recorder.uplinks.base import ErrorKind, UplinkError
from edge_recorder.uplinks.dice.tokens import PasswordGrantTokens
from tests.integration.uplinks.conftest import device_config
from tests.support.emulator import EmulatorHandle
from tests.support.helpers import async_poll_until

GARBAGE = b"\xff\xfe\x00\x81garbage\xc3"


class TokenServer:
    """Answers every token request with 200 and `body`; counts the requests."""

    def __init__(self, body: bytes) -> None:
        self.body = body
        self.requests = 0

    async def handle(self, request: web.Request) -> web.Response:
        await request.read()
        self.requests += 1
        return web.Response(body=self.body, content_type="application/json")


@contextlib.asynccontextmanager
async def serve(server: TokenServer) -> AsyncIterator[str]:
    """The token server on 127.0.0.1; yields its token URL."""
    app = web.Application()
    app.router.add_post("/oauth2/token", server.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    try:
        yield f"http://{host}:{port}/oauth2/token"
    finally:
        await runner.cleanup()


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (GARBAGE, "a body that is not UTF-8 text"),
        (b"<html>Please sign in to the hotel Wi-Fi</html>", "a body that is not JSON"),
        (b"[" * 50_000, "a body that is JSON nested too deeply"),
        (b'["access_token", "t"]', "JSON that is not an object (an array)"),
        (b'"t"', "JSON that is not an object (a string)"),
        (b'{"token_type": "Bearer"}', "no access_token"),
        (b'{"access_token": ""}', "an empty access_token"),
        (b'{"access_token": 42}', "an access_token that is not a string (a number)"),
        (b'{"access_token": {"value": "t"}}', "an access_token that is not a string (an object)"),
    ],
    ids=["not-utf8", "html", "deep", "array", "string", "missing", "empty", "number", "object"],
)
async def test_malformed_token_answer_is_a_retryable_protocol_error(
    body: bytes, problem: str
) -> None:
    server = TokenServer(body)
    async with serve(server) as url:
        tokens = ClientCredentialsProvider(url, "device", lambda: "secret")
        try:
            with pytest.raises(UplinkError) as info:
                await tokens.token()
        finally:
            await tokens.aclose()
    err = info.value
    assert (err.kind, err.transport, err.retryable) == (ErrorKind.PROTOCOL, "auth", True)
    assert err.message == f"token endpoint answered 200 with {problem}"


async def test_dice_sign_in_garbage_is_a_retryable_protocol_error() -> None:
    async with serve(TokenServer(GARBAGE)) as url:
        tokens = PasswordGrantTokens(url, "user", lambda: "password")
        try:
            with pytest.raises(UplinkError) as info:
                await tokens.token()
        finally:
            await tokens.aclose()
    err = info.value
    assert (err.kind, err.transport, err.retryable) == (ErrorKind.PROTOCOL, "auth", True)
    assert err.message == "dice sign-in answered 200 with a body that is not UTF-8 text"


@pytest.mark.parametrize(
    "expires_in", [b"NaN", b"Infinity", b"1" + b"0" * 400], ids=["nan", "infinity", "overflow"]
)
async def test_absurd_expires_in_falls_back_to_the_default_lifetime(expires_in: bytes) -> None:
    """JSON allows NaN, Infinity and huge integers: a NaN lifetime refetched the token on
    every call, a huge integer raised OverflowError (again not an UplinkError)."""
    server = TokenServer(b'{"access_token": "t", "expires_in": ' + expires_in + b"}")
    async with serve(server) as url:
        tokens = ClientCredentialsProvider(url, "device", lambda: "secret", refresh_margin_s=0)
        try:
            first, again = await tokens.token(), await tokens.token()
        finally:
            await tokens.aclose()
    assert first == again == "t"
    assert server.requests == 1  # cached, for the default 300 s


# ---------------------------------------------------------------------------------------------
# The delivery engine against it

WINDOW_S = 4.0
RETRY_INITIAL_S, RETRY_MAX_S = 0.1, 2.0


async def test_engine_backs_off_on_a_garbage_token_answer_and_says_why(
    aas_emulator: EmulatorHandle, tmp_path: Path
) -> None:
    """The real engine over the real AAS uplinks (the emulator stays unreached): its live probe
    and its backlog (one closed recording) both need a token. With back-off from 0.1 s doubling
    to 2 s (jitter pinned low, so delays are shortest), each task may ask at most 8 times in 4 s;
    the old restart-every-0.1-s loop asked about 80 times."""
    server = TokenServer(GARBAGE)
    async with serve(server) as url:
        cfg = device_config(
            aas_emulator,
            tmp_path,
            auth={"token_url": url},
            uplink={"retry_initial_s": RETRY_INITIAL_S, "retry_max_s": RETRY_MAX_S},
            spool={
                "dir": str(tmp_path / "spool"),
                "key_file": str(tmp_path / "spool.key"),
                "reserve_free_bytes": 0,
            },
        )
        spool = Spool.open(cfg.spool, environ={})
        writer = spool.begin_recording(
            "enc-garbage", 1, str(uuid.uuid4()), codec="pcm16", sample_rate=16000
        )
        writer.append(bytes(32000))
        writer.close("stopped")
        engine = DeliveryEngine(cfg, spool, rand=lambda: 0.0)
        started = time.monotonic()
        task = asyncio.create_task(engine.run())
        try:
            await async_poll_until(
                lambda: engine.snapshot().last_error is not None, what="last_error set"
            )
            await asyncio.sleep(started + WINDOW_S - time.monotonic())  # the observed window
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await engine.aclose()
            spool.close()
    assert 3 <= server.requests <= 20, f"{server.requests} token requests in {WINDOW_S:g} s"
    error = engine.snapshot().last_error
    assert error is not None and error.code == "delivery_protocol", error
    assert "token endpoint answered 200 with a body that is not UTF-8 text" in error.message
