"""WebSocket client against the real emulator: framing both ways, resume, auth, errors."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from edge_recorder.uplinks.aas.websocket import AasWebSocketClient
from edge_recorder.uplinks.auth import ClientCredentialsProvider
from edge_recorder.uplinks.base import DataFormat, ErrorKind, RecordingRef, UplinkError
from tests.integration.uplinks.conftest import (
    CHUNK_100MS,
    chunks,
    client_factory,
    new_session,
    pcm_audio,
)
from tests.support.emulator import EmulatorHandle, MakeEmulator, sha256

PCM = DataFormat("pcm", 16000, 16, 1)
WsFactory = Callable[..., tuple[AasWebSocketClient, ClientCredentialsProvider]]


@pytest.fixture
async def ws_client(tmp_path: Path) -> AsyncIterator[WsFactory]:
    async for make in client_factory(AasWebSocketClient, tmp_path):
        yield make


@pytest.mark.parametrize("header_blocks", [True, False], ids=["header-blocks", "bare-json"])
async def test_record_configuration_and_processing(
    make_aas_emulator: MakeEmulator, ws_client: WsFactory, header_blocks: bool
) -> None:
    """Server text frames with and without the `Path=` header block parse the same."""
    emu = await make_aas_emulator(ws_header_blocks=header_blocks)
    client, _ = ws_client(emu)
    session = new_session(emu)
    conf = await client.retrieve_configuration(session)
    assert conf.max_chunk_bytes == emu.settings.max_chunk_bytes and PCM in conf.formats

    audio = pcm_audio(15 * CHUNK_100MS + 11, seed=9)
    rec = RecordingRef.new(1)
    live = await client.open_recording(session, rec, PCM)
    assert live.resume_offset == 0 and live.sequence == 1
    for offset, data in chunks(audio):
        await live.send(offset, data)
    assert await live.wait_confirmed(len(audio), 5.0) == len(audio)
    assert await live.close() == len(audio)
    stored = await emu.recording(session.correlation_id, rec.guid)
    assert stored["sha256"] == sha256(audio) and stored["transport"] == "ws"
    assert stored["state"] == "closed"

    started = await client.start_processing(session)
    assert (started.recording_count, started.total_bytes) == (1, len(audio))
    assert started.correlation_id == session.correlation_id


async def test_resume_after_dropped_socket(
    aas_emulator: EmulatorHandle, ws_client: WsFactory
) -> None:
    client, _ = ws_client(aas_emulator)
    session = new_session(aas_emulator)
    rec = RecordingRef.new(3)
    audio = pcm_audio(12 * CHUNK_100MS, seed=4)
    await aas_emulator.add_fault(kind="drop_stream", target="ws", afterBytes=5 * CHUNK_100MS)
    live = await client.open_recording(session, rec, PCM)
    with pytest.raises(UplinkError) as info:
        for offset, data in chunks(audio):
            await live.send(offset, data)
        await live.wait_confirmed(len(audio), 5.0)
    assert info.value.kind is ErrorKind.UNAVAILABLE and info.value.retryable
    confirmed = live.confirmed
    await live.abort()

    again = await client.open_recording(session, rec, PCM, starting_offset=confirmed)
    assert again.resume_offset == 5 * CHUNK_100MS and again.sequence == 3
    for offset, data in chunks(audio, start=again.resume_offset):
        await again.send(offset, data)
    assert await again.close() == len(audio)
    assert await aas_emulator.recording_bytes(session.correlation_id, rec.guid) == audio


async def test_invalid_open_closes_without_message(
    aas_emulator: EmulatorHandle, ws_client: WsFactory
) -> None:
    client, _ = ws_client(aas_emulator)
    with pytest.raises(UplinkError) as info:
        await client.open_recording(
            new_session(aas_emulator), RecordingRef.new(1), DataFormat("pcm", 1000, 16, 1)
        )
    assert info.value.kind is ErrorKind.INVALID and not info.value.retryable
    assert info.value.status == 1008


async def test_refused_chunk_closes_with_reason(
    make_aas_emulator: MakeEmulator, ws_client: WsFactory
) -> None:
    """A mid-stream refusal (application close 4400 + reason) reaches the caller verbatim."""
    emu = await make_aas_emulator(max_chunk_bytes=1000)
    client, _ = ws_client(emu)
    live = await client.open_recording(new_session(emu), RecordingRef.new(1), PCM)
    await live.send(0, b"\x01" * 1000)
    await live.send(1000, b"\x02" * 1001)
    with pytest.raises(UplinkError) as info:
        await live.wait_confirmed(2001, 5.0)
    assert info.value.kind is ErrorKind.INVALID and info.value.status == 4400
    assert "exceeds 1000 bytes" in info.value.message and not info.value.retryable
    assert live.confirmed == 1000
    with pytest.raises(UplinkError):
        await live.send(2001, b"\x03")
    await live.abort()


async def test_upgrade_refusals_are_typed(
    make_aas_emulator: MakeEmulator, ws_client: WsFactory, tmp_path: Path
) -> None:
    emu = await make_aas_emulator(extra_clients={"intruder": "s3cret"})
    secret = tmp_path / "intruder"
    secret.write_text("s3cret")
    intruder, _ = ws_client(emu, auth={"client_id": "intruder", "client_secret_file": str(secret)})
    with pytest.raises(UplinkError) as info:
        await intruder.open_recording(new_session(emu), RecordingRef.new(1), PCM)
    assert info.value.kind is ErrorKind.FORBIDDEN and info.value.status == 403

    client, tokens = ws_client(emu)
    with pytest.raises(UplinkError) as info:
        await client.open_recording(
            new_session(emu, external_user_id=None), RecordingRef.new(1), PCM
        )
    assert info.value.kind is ErrorKind.FORBIDDEN and not info.value.retryable

    await emu.add_fault(kind="fail", target="ws", status=401)
    live = await client.open_recording(new_session(emu), RecordingRef.new(1), PCM)
    await live.abort()
    assert tokens.fetch_count == 2  # one 401 on the upgrade → one refresh → success

    await emu.add_fault(kind="fail", target="ws", status=503)
    with pytest.raises(UplinkError) as info:
        await client.retrieve_configuration(new_session(emu))
    assert info.value.kind is ErrorKind.UNAVAILABLE and info.value.retryable
