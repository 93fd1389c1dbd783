"""The fault proxy against a real TCP echo server: each fault does what the chaos tests assume."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from edge_recorder.faultproxy import FaultProxy
from tests.helpers import async_poll_until


async def _echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except ConnectionError:
        pass
    finally:
        writer.close()


@pytest.fixture
async def proxy() -> AsyncIterator[FaultProxy]:
    server = await asyncio.start_server(_echo, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with FaultProxy("127.0.0.1", port) as fault_proxy:
        yield fault_proxy
    server.close()
    await server.wait_closed()


async def _connect(proxy: FaultProxy) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", proxy.port)


async def _roundtrip(proxy: FaultProxy, payload: bytes) -> bytes:
    reader, writer = await _connect(proxy)
    writer.write(payload)
    await writer.drain()
    received = await asyncio.wait_for(reader.readexactly(len(payload)), 5)
    writer.close()
    return received


async def test_pass_through_forwards_bytes_both_ways(proxy: FaultProxy) -> None:
    payload = bytes(range(256)) * 1000
    assert await _roundtrip(proxy, payload) == payload
    assert proxy.stats.bytes_up == len(payload) and proxy.stats.bytes_down == len(payload)


async def test_cut_closes_open_connections_and_refuses_new_ones(proxy: FaultProxy) -> None:
    reader, writer = await _connect(proxy)
    writer.write(b"ping")
    assert await asyncio.wait_for(reader.readexactly(4), 5) == b"ping"
    proxy.cut()
    assert await asyncio.wait_for(reader.read(), 5) == b""  # FIN: clean end of stream
    reader2, _writer2 = await _connect(proxy)
    assert await asyncio.wait_for(reader2.read(), 5) == b""
    assert proxy.stats.refused == 1
    proxy.pass_through()
    assert await _roundtrip(proxy, b"healed") == b"healed"


async def test_reset_aborts_connections(proxy: FaultProxy) -> None:
    reader, writer = await _connect(proxy)
    writer.write(b"x")
    await asyncio.wait_for(reader.readexactly(1), 5)
    proxy.reset()
    with pytest.raises(ConnectionResetError):
        await asyncio.wait_for(reader.read(), 5)
        # a reset peer can surface on the next write instead of the read
        writer.write(b"y" * 65536)
        await writer.drain()
        await asyncio.wait_for(reader.read(), 5)


async def test_blackhole_swallows_one_direction(proxy: FaultProxy) -> None:
    reader, writer = await _connect(proxy)
    proxy.blackhole("up")
    writer.write(b"lost")
    await writer.drain()
    await async_poll_until(lambda: proxy.stats.swallowed_up >= 4, 5, "bytes swallowed")
    assert proxy.stats.bytes_up == 0
    proxy.pass_through()
    writer.write(b"kept")
    assert await asyncio.wait_for(reader.readexactly(4), 5) == b"kept"
    writer.close()


async def test_slow_and_latency_still_deliver_every_byte(proxy: FaultProxy) -> None:
    proxy.slow(2_000_000)
    proxy.set_latency(0.001)
    payload = b"abc" * 10000
    assert await _roundtrip(proxy, payload) == payload


async def test_unreachable_target_is_refused() -> None:
    probe = await asyncio.start_server(_echo, "127.0.0.1", 0)
    port = probe.sockets[0].getsockname()[1]
    probe.close()
    await probe.wait_closed()
    async with FaultProxy("127.0.0.1", port) as proxy:
        reader, _ = await _connect(proxy)
        with pytest.raises((ConnectionResetError, asyncio.IncompleteReadError)):
            await asyncio.wait_for(reader.readexactly(1), 5)
        assert proxy.stats.refused == 1
