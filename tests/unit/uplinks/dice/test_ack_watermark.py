"""The ping/pong receipt watermark of a Dice stream, against a fake WebSocket (pure logic)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import aiohttp
import pytest

from edge_recorder.config.services.dice import DiceConfig
from edge_recorder.uplinks.base import Ack, ErrorKind, UplinkError
from edge_recorder.uplinks.dice import messages as m
from edge_recorder.uplinks.dice.stream import DiceStream

SECOND = 32000


async def until(predicate: Callable[[], bool], timeout_s: float = 2.0) -> None:
    """Yield to the event loop until `predicate` holds (a deadline, never a fixed sleep)."""
    async with asyncio.timeout(timeout_s):
        while not predicate():  # noqa: ASYNC110 - a fake socket has no event to await
            await asyncio.sleep(0)


class FakeWs:
    """Records what the stream writes; the test plays the server by queueing messages."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, Any]] = []  # ("text", dict) | ("ping", bytes) | ("pong", ..)
        self.inbox: asyncio.Queue[aiohttp.WSMessage] = asyncio.Queue()
        self.close_code: int | None = None
        self.closed = False

    async def send_str(self, text: str) -> None:
        self.sent.append(("text", json.loads(text)))

    async def ping(self, payload: bytes) -> None:
        self.sent.append(("ping", payload))

    async def pong(self, payload: bytes) -> None:
        self.sent.append(("pong", payload))

    async def receive(self) -> aiohttp.WSMessage:
        return await self.inbox.get()

    async def close(self) -> None:
        self.closed = True
        self.inbox.put_nowait(aiohttp.WSMessage(aiohttp.WSMsgType.CLOSED, None, None))

    # ---- the server side
    def answer(self, kind: aiohttp.WSMsgType, data: Any) -> None:
        self.inbox.put_nowait(aiohttp.WSMessage(kind, data, None))

    def pong_all(self) -> None:
        """Pong every ping so far, in order (what a server reading in order does)."""
        for what, payload in self.sent:
            if what == "ping":
                self.answer(aiohttp.WSMsgType.PONG, payload)

    def pings(self) -> list[int | None]:
        return [m.acked_offset(p) for what, p in self.sent if what == "ping"]

    def audio(self) -> int:
        return sum(
            len(m.base64.b64decode(body["payload"]))
            for what, body in self.sent
            if what == "text" and body["object"] == "audio_chunk"
        )


async def opened(ws: FakeWs, start: int = 0, **config: Any) -> DiceStream:
    stream = DiceStream(
        ws,  # type: ignore[arg-type]
        DiceConfig(**config),
        track_id="t",
        sample_rate=16000,
        start_offset=start,
        sequence=1,
        timeout_s=2.0,
        label={"recording_id": "r"},
    )
    starting = asyncio.create_task(stream.start(m.stream_request(DiceConfig(), "t", 16000)))
    await until(ws.pings)  # start() wrote its request and first ping
    ws.pong_all()
    await starting
    return stream


async def test_a_pong_confirms_exactly_the_offset_its_ping_named() -> None:
    ws = FakeWs()
    stream = await opened(ws, start=1000)
    assert ws.pings() == [1000] and stream.confirmed == 1000 == stream.resume_offset
    for pos in range(1000, 1000 + 3 * SECOND // 2, 3200):  # 1.5 s in 100 ms sends
        await stream.send(pos, b"\x01\x00" * 1600)
    assert ws.pings() == [1000, 1000 + SECOND]  # one ping after each 1 s of audio
    assert stream.confirmed == 1000  # sent is not confirmed
    ws.pong_all()
    assert await stream.wait_confirmed(1000 + SECOND, 1.0) == 1000 + SECOND
    await stream.abort()


async def test_heartbeat_and_foreign_pongs_confirm_nothing_and_server_pings_are_answered() -> None:
    ws = FakeWs()
    stream = await opened(ws)
    await stream.send(0, b"\x00" * 6400)
    ws.answer(aiohttp.WSMsgType.PONG, b"")  # aiohttp heartbeat
    ws.answer(aiohttp.WSMsgType.PONG, m.ack_ping(10**9))  # more than was ever written
    ws.answer(aiohttp.WSMsgType.PING, b"srv")
    await until(lambda: ("pong", b"srv") in ws.sent)
    assert stream.confirmed == 6400  # clipped to what was written, never beyond
    await stream.abort()


async def test_close_pings_waits_for_the_pong_then_sends_stop_and_ends_the_acks() -> None:
    ws = FakeWs()
    stream = await opened(ws, note_timeout_s=5.0)
    acks: list[Ack] = []

    async def collect() -> None:
        async for ack in stream.acks():
            acks.append(ack)

    collector = asyncio.create_task(collect())
    await stream.send(0, b"\x02\x00" * 4000)
    closing = asyncio.create_task(stream.close())
    await until(lambda: ws.pings()[-1] == 8000)
    assert ("text", {"object": "stop"}) not in ws.sent  # not before every byte is confirmed
    ws.pong_all()
    await until(lambda: ("text", {"object": "stop"}) in ws.sent)
    note = {"object": "transcript_item", "id": "n", "is_final": True, "sections": []}
    ws.answer(aiohttp.WSMsgType.TEXT, json.dumps(note))
    assert await closing == 8000
    await collector
    assert acks[-1] == Ack(8000, final=True) and stream.note is not None and ws.closed


async def test_an_odd_byte_waits_for_its_sample_and_nothing_is_lost() -> None:
    ws = FakeWs()
    stream = await opened(ws)
    await stream.send(0, b"\x01\x02\x03")
    assert ws.audio() == 2
    await stream.send(3, b"\x04")
    assert ws.audio() == 4
    with pytest.raises(ValueError, match="expected 4"):
        await stream.send(3, b"\x05\x06")  # a rewind is a caller bug, refused locally
    await stream.abort()


async def test_error_msg_and_a_server_close_fail_the_stream_by_kind() -> None:
    ws = FakeWs()
    stream = await opened(ws)
    ws.answer(aiohttp.WSMsgType.TEXT, '{"object":"error_msg","message":"sample_rate unsupported"}')
    with pytest.raises(UplinkError) as failed:
        await stream.wait_confirmed(1, 1.0)
    assert failed.value.kind is ErrorKind.SERVER and "sample_rate" in failed.value.message
    with pytest.raises(UplinkError):
        await stream.send(0, b"\x00\x00")  # a failed stream takes no more audio

    ws2 = FakeWs()
    stream2 = await opened(ws2)
    ws2.answer(aiohttp.WSMsgType.CLOSE, 1011)
    with pytest.raises(UplinkError) as closed:
        await stream2.wait_confirmed(1, 1.0)
    assert closed.value.kind is ErrorKind.UNAVAILABLE
    await stream.abort()
    await stream2.abort()
