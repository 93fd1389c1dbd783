"""What the device's gRPC connection sends besides audio while a recording streams.

Each HTTP/2 PING the client starts costs gRPC timer-thread wake-ups on the device and an
answer from the server. The client's BDP probe pinged about once a second while streaming,
only to size the window of what the device *receives* (small acks); keepalive pings come
every `uplink.keepalive_s`. A TCP relay between client and emulator reads the client's
frames (plaintext h2c) and counts the PINGs the client started.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from edge_recorder.uplinks.aas.grpc_stream import AasGrpcClient
from edge_recorder.uplinks.base import DataFormat, RecordingRef
from tests.integration.uplinks.conftest import (
    CHUNK_100MS,
    chunks,
    client_factory,
    new_session,
    pcm_audio,
)
from tests.support.emulator import EmulatorHandle

PCM = DataFormat("pcm", 16000, 16, 1)
_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
_PING, _ACK = 0x6, 0x1


@dataclass
class FrameCounter:
    """Parses the client-to-server byte stream into HTTP/2 frames as it passes."""

    buffer: bytearray = field(default_factory=bytearray)
    preface_seen: bool = False
    pings_started: int = 0
    data_frames: int = 0

    def feed(self, chunk: bytes) -> None:
        self.buffer += chunk
        if not self.preface_seen:
            if len(self.buffer) < len(_PREFACE):
                return
            assert bytes(self.buffer[: len(_PREFACE)]) == _PREFACE
            del self.buffer[: len(_PREFACE)]
            self.preface_seen = True
        while len(self.buffer) >= 9:
            length = int.from_bytes(self.buffer[:3], "big")
            if len(self.buffer) < 9 + length:
                return
            kind, flags = self.buffer[3], self.buffer[4]
            if kind == _PING and not flags & _ACK:
                self.pings_started += 1
            elif kind == 0x0:
                self.data_frames += 1
            del self.buffer[: 9 + length]


async def _pipe(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, counter: FrameCounter | None
) -> None:
    with contextlib.suppress(ConnectionError):
        while data := await reader.read(65536):
            if counter is not None:
                counter.feed(data)
            writer.write(data)
            await writer.drain()
    writer.close()


@pytest.fixture
async def relay(aas_emulator: EmulatorHandle) -> AsyncIterator[tuple[str, FrameCounter]]:
    """A plain TCP relay to the emulator's gRPC port that counts the client's frames."""
    host, port = aas_emulator.grpc_target.rsplit(":", 1)
    counter = FrameCounter()
    tasks: set[asyncio.Task[None]] = set()

    async def accept(down_r: asyncio.StreamReader, down_w: asyncio.StreamWriter) -> None:
        up_r, up_w = await asyncio.open_connection(host, int(port))
        tasks.add(asyncio.create_task(_pipe(down_r, up_w, counter)))
        tasks.add(asyncio.create_task(_pipe(up_r, down_w, None)))

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    yield f"127.0.0.1:{server.sockets[0].getsockname()[1]}", counter
    server.close()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await server.wait_closed()


async def test_streaming_starts_no_pings_between_keepalives(
    aas_emulator: EmulatorHandle, relay: tuple[str, FrameCounter], tmp_path: Path
) -> None:
    target, counter = relay
    audio = pcm_audio(20 * CHUNK_100MS)
    async for make in client_factory(AasGrpcClient, tmp_path):
        client, _ = make(aas_emulator, aas={"grpc_target": target})  # keepalive: 20 s
        live = await client.open_recording(new_session(aas_emulator), RecordingRef.new(1), PCM)
        for offset, data in chunks(audio):
            await live.send(offset, data)
            await live.wait_confirmed(offset + len(data), 5.0)  # an ack back per message
        assert await live.close() == len(audio)
    assert counter.data_frames >= 20  # the relay saw the stream
    assert counter.pings_started == 0
