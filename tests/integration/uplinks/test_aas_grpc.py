"""gRPC client (grpc.aio) against the real emulator: streaming, resume, auth, errors."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import jwt
import pytest

from edge_recorder.uplinks.aas.grpc_stream import AasGrpcClient
from edge_recorder.uplinks.auth import ClientCredentialsProvider
from edge_recorder.uplinks.base import (
    DataFormat,
    ErrorKind,
    RecordingRef,
    SessionIdentity,
    UplinkError,
)
from tests.integration.uplinks.conftest import (
    CHUNK_100MS,
    chunks,
    client_factory,
    new_session,
    pcm_audio,
    wait_until,
)
from tests.support.emulator import EmulatorHandle, MakeEmulator, sha256

PCM = DataFormat("pcm", 16000, 16, 1)
GrpcFactory = Callable[..., tuple[AasGrpcClient, ClientCredentialsProvider]]


@pytest.fixture
async def grpc_client(tmp_path: Path) -> AsyncIterator[GrpcFactory]:
    async for make in client_factory(AasGrpcClient, tmp_path):
        yield make


async def stream(
    client: AasGrpcClient, session: SessionIdentity, rec: RecordingRef, audio: bytes
) -> int:
    live = await client.open_recording(session, rec, PCM)
    assert live.resume_offset == 0
    for offset, data in chunks(audio):
        await live.send(offset, data)
    assert await live.wait_confirmed(len(audio), 5.0) == len(audio)
    return await live.close("stop")


async def test_configuration_stream_and_processing(
    aas_emulator: EmulatorHandle, grpc_client: GrpcFactory
) -> None:
    client, _ = grpc_client(aas_emulator)
    session = new_session(aas_emulator)
    conf = await client.retrieve_configuration(session)
    assert conf.max_chunk_bytes == aas_emulator.settings.max_chunk_bytes
    assert conf.max_recording_duration_s == aas_emulator.settings.max_recording_duration_s
    assert conf.warn_before_s == aas_emulator.settings.warning_lead_time_s
    assert PCM in conf.formats and "en-US" in conf.recording_locales

    audio = pcm_audio(20 * CHUNK_100MS + 100)  # 2 s of audio plus a short last chunk
    rec = RecordingRef.new(1)
    assert await stream(client, session, rec, audio) == len(audio)
    stored = await aas_emulator.recording(session.correlation_id, rec.guid)
    assert stored["state"] == "closed" and stored["sequenceNumber"] == 1
    assert stored["sha256"] == sha256(audio) and stored["transport"] == "grpc"
    assert stored["recordingLengthSeconds"] == pytest.approx(len(audio) / 32000)

    started = await client.start_processing(session, [rec.guid])
    assert (started.recording_count, started.total_bytes) == (1, len(audio))
    assert (await aas_emulator.session(session.correlation_id))["processingStarted"]


async def test_acks_iterate_to_the_close_answer(
    aas_emulator: EmulatorHandle, grpc_client: GrpcFactory
) -> None:
    client, _ = grpc_client(aas_emulator)
    audio = pcm_audio(5 * CHUNK_100MS)
    live = await client.open_recording(new_session(aas_emulator), RecordingRef.new(1), PCM)
    acks = live.acks()
    seen: list[int] = []
    for offset, data in chunks(audio):
        await live.send(offset, data)
        ack = await anext(acks)  # one chunk in flight: every ack is seen
        seen.append(ack.stored)
    final = await live.close()
    rest = [a async for a in acks]
    assert seen == [3200, 6400, 9600, 12800, 16000]
    assert [(a.stored, a.final) for a in rest] == [(16000, True)] and final == len(audio)


async def test_resume_after_dropped_stream(
    aas_emulator: EmulatorHandle, grpc_client: GrpcFactory
) -> None:
    client, _ = grpc_client(aas_emulator)
    session = new_session(aas_emulator)
    rec = RecordingRef.new(1)
    audio = pcm_audio(30 * CHUNK_100MS, seed=5)
    await aas_emulator.add_fault(kind="drop_stream", target="grpc", afterBytes=10 * CHUNK_100MS + 7)

    live = await client.open_recording(session, rec, PCM)
    with pytest.raises(UplinkError) as info:
        for offset, data in chunks(audio):
            await live.send(offset, data)
        await live.wait_confirmed(len(audio), 5.0)
    assert info.value.kind is ErrorKind.UNAVAILABLE and info.value.retryable
    confirmed = live.confirmed
    await live.abort()
    assert confirmed == 10 * CHUNK_100MS  # acks stop at the last whole chunk before the cut

    again = await client.open_recording(session, rec, PCM, starting_offset=confirmed)
    held = again.resume_offset
    assert held >= confirmed  # the server may hold a partial chunk past the last ack
    assert held == 10 * CHUNK_100MS + 7
    # Re-send from the server's count, in the same 100 ms grid after the first piece.
    first_end = min((held // CHUNK_100MS + 1) * CHUNK_100MS, len(audio))
    await again.send(held, audio[held:first_end])
    for offset, data in chunks(audio, start=first_end):
        await again.send(offset, data)
    assert await again.close() == len(audio)
    assert await aas_emulator.recording_bytes(session.correlation_id, rec.guid) == audio


async def test_forgotten_recording_refuses_resume(
    aas_emulator: EmulatorHandle, grpc_client: GrpcFactory
) -> None:
    client, _ = grpc_client(aas_emulator)
    session = new_session(aas_emulator)
    rec = RecordingRef.new(1)
    audio = pcm_audio(4 * CHUNK_100MS)
    live = await client.open_recording(session, rec, PCM)
    for offset, data in chunks(audio):
        await live.send(offset, data)
    confirmed = await live.wait_confirmed(len(audio), 5.0)
    await live.abort()
    await aas_emulator.forget_recording(session.correlation_id, rec.guid)
    with pytest.raises(UplinkError) as info:
        await client.open_recording(session, rec, PCM, starting_offset=confirmed)
    assert info.value.kind is ErrorKind.NOT_FOUND and not info.value.retryable


async def test_token_expiry_mid_stream(
    make_aas_emulator: MakeEmulator, grpc_client: GrpcFactory
) -> None:
    """A stream outlives its token; the next call gets a fresh one without a failure."""
    emu = await make_aas_emulator(token_lifetime_s=1)
    client, tokens = grpc_client(emu, auth={"refresh_margin_s": 0})
    session = new_session(emu)
    rec = RecordingRef.new(1)
    live = await client.open_recording(session, rec, PCM)
    first_token = await tokens.token()
    exp = jwt.decode(first_token, options={"verify_signature": False})["exp"]
    audio = bytearray()
    # Keep streaming, paced by the server's acks, until the opening token has expired.
    while time.time() <= exp + 0.2:
        data = pcm_audio(CHUNK_100MS, seed=len(audio))
        await live.send(len(audio), data)
        audio += data
        await live.wait_confirmed(len(audio), 5.0)
    assert await live.close() == len(audio)
    assert await emu.recording_bytes(session.correlation_id, rec.guid) == bytes(audio)
    with pytest.raises(LookupError, match="expired"):  # the opening token is really dead now
        await emu.create_ambient_session(session.correlation_id, token=first_token)
    second = await client.open_recording(session, RecordingRef.new(2), PCM)
    await second.send(0, b"\x00" * 320)
    assert await second.close() == 320
    assert tokens.fetch_count >= 2


async def test_expired_token_on_open_costs_one_refresh(
    make_aas_emulator: MakeEmulator, grpc_client: GrpcFactory
) -> None:
    """The cache believes its token fresh (clock skew); UNAUTHENTICATED → refresh → success."""
    emu = await make_aas_emulator(token_lifetime_s=1)
    client, tokens = grpc_client(emu)
    tokens._clock = lambda: 0.0  # frozen clock: the cached token never looks stale
    session = new_session(emu)
    token = await tokens.token()
    exp = jwt.decode(token, options={"verify_signature": False})["exp"]
    await wait_until(lambda: time.time() > exp + 0.1, timeout_s=5)
    live = await client.open_recording(session, RecordingRef.new(1), PCM)
    await live.send(0, b"\x01" * 64)
    assert await live.close() == 64
    assert tokens.fetch_count == 2


async def test_s2s_token_without_user_is_forbidden(
    aas_emulator: EmulatorHandle, grpc_client: GrpcFactory
) -> None:
    client, tokens = grpc_client(aas_emulator)
    session = new_session(aas_emulator, external_user_id=None)
    with pytest.raises(UplinkError) as info:
        await client.open_recording(session, RecordingRef.new(1), PCM)
    assert info.value.kind is ErrorKind.FORBIDDEN and not info.value.retryable
    assert "external-user-id" in info.value.message
    assert tokens.fetch_count == 1  # a 403 is not worth a token refresh
    user_guid = new_session(aas_emulator, external_user_id=None, user_guid="0000-guid")
    live = await client.open_recording(user_guid, RecordingRef.new(1), PCM)
    await live.abort()


async def test_not_allow_listed_client_is_permission_denied(
    make_aas_emulator: MakeEmulator, grpc_client: GrpcFactory, tmp_path: Path
) -> None:
    emu = await make_aas_emulator(extra_clients={"intruder": "s3cret"})
    secret = tmp_path / "intruder"
    secret.write_text("s3cret")
    client, _ = grpc_client(emu, auth={"client_id": "intruder", "client_secret_file": str(secret)})
    with pytest.raises(UplinkError) as info:
        await client.retrieve_configuration(new_session(emu))
    assert info.value.kind is ErrorKind.FORBIDDEN and "allow list" in info.value.message


@pytest.mark.parametrize(
    ("status", "kind", "retryable"),
    [
        (503, ErrorKind.UNAVAILABLE, True),
        (500, ErrorKind.SERVER, True),
        (429, ErrorKind.THROTTLED, True),
        (400, ErrorKind.INVALID, False),
        (404, ErrorKind.NOT_FOUND, False),
    ],
)
async def test_server_errors_map_to_retryable_or_not(
    aas_emulator: EmulatorHandle,
    grpc_client: GrpcFactory,
    status: int,
    kind: ErrorKind,
    retryable: bool,
) -> None:
    client, _ = grpc_client(aas_emulator)
    session = new_session(aas_emulator)
    await aas_emulator.add_fault(kind="fail", target="grpc", status=status, path="RecordAmbient")
    with pytest.raises(UplinkError) as info:
        await client.open_recording(session, RecordingRef.new(1), PCM)
    assert (info.value.kind, info.value.retryable) == (kind, retryable)
    live = await client.open_recording(session, RecordingRef.new(1), PCM)  # fault consumed
    await live.abort()


async def test_invalid_open_is_not_retryable(
    aas_emulator: EmulatorHandle, grpc_client: GrpcFactory
) -> None:
    client, _ = grpc_client(aas_emulator)
    bad = DataFormat("pcm", 1000, 16, 1)
    with pytest.raises(UplinkError) as info:
        await client.open_recording(new_session(aas_emulator), RecordingRef.new(1), bad)
    assert info.value.kind is ErrorKind.INVALID and "sampleRateHz" in info.value.message


async def test_local_gap_is_refused_before_it_reaches_the_server(
    aas_emulator: EmulatorHandle, grpc_client: GrpcFactory
) -> None:
    client, _ = grpc_client(aas_emulator)
    live = await client.open_recording(new_session(aas_emulator), RecordingRef.new(1), PCM)
    await live.send(0, b"\x00" * 100)
    with pytest.raises(ValueError, match="expected 100"):
        await live.send(200, b"\x00" * 100)
    assert await live.close() == 100


async def test_unreachable_service_is_retryable(
    aas_emulator: EmulatorHandle, grpc_client: GrpcFactory
) -> None:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client, _ = grpc_client(aas_emulator, aas={"grpc_target": f"127.0.0.1:{port}"})
    with pytest.raises(UplinkError) as info:
        await client.open_recording(new_session(aas_emulator), RecordingRef.new(1), PCM)
    assert info.value.kind is ErrorKind.UNAVAILABLE and info.value.retryable
