"""The fault proxy against a real TCP echo server and the emulator's gRPC front: each fault
does what the chaos tests assume."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from devtools.faultproxy import Direction, FaultProxy
from edge_recorder.uplinks.aas.factory import aas_uplinks
from edge_recorder.uplinks.base import ErrorKind, LiveStreamer, SessionIdentity, UplinkError
from tests.chaos.rig import device_config
from tests.support.emulator import EmulatorHandle
from tests.support.helpers import async_poll_until


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


async def test_a_cut_while_dialling_upstream_refuses_that_connection_too(
    proxy: FaultProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A connection accepted just before a cut, still dialling the target, must not survive the
    cut (it did: a keep-alive connection then carried the device's traffic through the outage)."""
    dialling, go_on = asyncio.Event(), asyncio.Event()
    real_open = asyncio.open_connection

    async def slow_open(host: str, port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        dialling.set()
        await go_on.wait()
        return await real_open(host, port)

    monkeypatch.setattr(asyncio, "open_connection", slow_open)  # slows the proxy's dial
    reader, writer = await asyncio.wait_for(real_open("127.0.0.1", proxy.port), 5)
    await asyncio.wait_for(dialling.wait(), 5)
    proxy.cut()
    go_on.set()
    writer.write(b"through the outage?")
    assert await asyncio.wait_for(reader.read(), 5) == b""
    assert proxy.stats.refused == 1 and proxy.stats.bytes_up == 0


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


async def _read_until_closed(reader: asyncio.StreamReader) -> bytes:
    """Everything the connection delivers until it ends (FIN or RST); fails if it stays open."""
    received = b""
    with contextlib.suppress(ConnectionResetError):
        try:
            while data := await asyncio.wait_for(reader.read(65536), 5):
                received += data
        except TimeoutError:
            raise AssertionError(f"still open after the heal; delivered {received!r}") from None
    return received


async def test_blackhole_swallows_one_direction(proxy: FaultProxy) -> None:
    _reader, writer = await _connect(proxy)
    proxy.blackhole("up")
    writer.write(b"lost")
    await writer.drain()
    await async_poll_until(lambda: proxy.stats.swallowed_up >= 4, 5, "bytes swallowed")
    assert proxy.stats.bytes_up == 0
    proxy.pass_through()
    assert await _roundtrip(proxy, b"healed") == b"healed"  # new connections go through
    writer.close()


@pytest.mark.parametrize("direction", ["up", "down"])
async def test_a_healed_connection_never_delivers_a_stream_with_a_gap(
    proxy: FaultProxy, direction: Direction
) -> None:
    """Real TCP delivers every byte in order or ends the connection: once bytes were
    swallowed, the bytes after them must not arrive (an HTTP/2 peer would misread them)."""
    reader, writer = await _connect(proxy)
    writer.write(b"seen")
    assert await asyncio.wait_for(reader.readexactly(4), 5) == b"seen"
    proxy.blackhole(direction)
    writer.write(b"lost")
    await writer.drain()
    stat = "swallowed_up" if direction == "up" else "swallowed_down"
    await async_poll_until(lambda: getattr(proxy.stats, stat) >= 4, 5, "bytes swallowed")
    proxy.pass_through()
    with contextlib.suppress(ConnectionError):  # the reset may already show on this write
        writer.write(b"kept")
        await writer.drain()
    received = await _read_until_closed(reader)
    assert b"lostkept".startswith(received), f"a stream with a gap was delivered: {received!r}"
    assert proxy.stats.broken == 1
    writer.close()
    assert await _roundtrip(proxy, b"healed") == b"healed"


async def test_a_connection_that_lost_nothing_survives_a_blackhole(proxy: FaultProxy) -> None:
    reader, writer = await _connect(proxy)
    proxy.blackhole()
    proxy.pass_through()
    writer.write(b"still here")
    assert await asyncio.wait_for(reader.readexactly(10), 5) == b"still here"
    assert proxy.stats.broken == 0 and proxy.stats.connections == 1
    writer.close()


async def test_grpc_calls_after_a_blackhole_run_on_a_new_connection(
    aas_emulator: EmulatorHandle, tmp_path: Path
) -> None:
    """The chaos trials' gRPC link: a call lost in a black hole must not leave the channel on
    a connection whose HTTP/2 stream has a gap; after the heal it dials a new one."""
    grpc_port = int(aas_emulator.grpc_target.rsplit(":", 1)[1])
    async with FaultProxy("127.0.0.1", grpc_port) as proxy:
        config = device_config(
            aas_emulator, proxy.address, aas_emulator.http_url, tmp_path, request_timeout_s=1.0
        )
        uplinks = aas_uplinks(config)
        live = uplinks.live
        try:
            await live.retrieve_configuration(uplinks.identity("before"))
            proxy.blackhole()
            with pytest.raises(UplinkError):  # its HEADERS and DATA frames are swallowed
                await live.retrieve_configuration(uplinks.identity("during"))
            assert proxy.stats.swallowed_up > 0
            proxy.pass_through()
            errors = await _first_successful_call(live, uplinks.identity("after"))
            assert all(e.kind is ErrorKind.UNAVAILABLE for e in errors), errors
            assert proxy.stats.connections == 2 and proxy.stats.broken == 1
            await live.retrieve_configuration(uplinks.identity("again"))
        finally:
            await uplinks.aclose()


async def test_grpc_client_redials_on_a_connection_of_its_own(
    aas_emulator: EmulatorHandle, tmp_path: Path
) -> None:
    """The delivery engine drops a bad live connection with `aclose()`: the next call must dial
    a new TCP connection even while something else holds on to the old one (here another
    client of the same target; gRPC's global subchannel pool would hand the old one back)."""
    grpc_port = int(aas_emulator.grpc_target.rsplit(":", 1)[1])
    async with FaultProxy("127.0.0.1", grpc_port) as proxy:
        config = device_config(aas_emulator, proxy.address, aas_emulator.http_url, tmp_path)
        mine, other = aas_uplinks(config), aas_uplinks(config)
        try:
            await other.live.retrieve_configuration(other.identity("other"))
            await mine.live.retrieve_configuration(mine.identity("mine"))
            assert proxy.stats.connections == 2
            await mine.live.aclose()
            await mine.live.retrieve_configuration(mine.identity("redialled"))
            assert proxy.stats.connections == 3
        finally:
            await mine.aclose()
            await other.aclose()


async def _first_successful_call(live: LiveStreamer, session: SessionIdentity) -> list[UplinkError]:
    """Call until one succeeds (the first may still meet the reset connection); the errors."""
    errors: list[UplinkError] = []
    deadline = time.monotonic() + 10
    while True:
        try:
            await live.retrieve_configuration(session)
            return errors
        except UplinkError as exc:
            errors.append(exc)
            if time.monotonic() > deadline:
                raise AssertionError(f"no successful call after the heal: {errors}") from exc


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
