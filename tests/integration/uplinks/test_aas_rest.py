"""REST store-and-forward client against the real emulator on loopback."""

from __future__ import annotations

import random
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from edge_recorder.uplinks.aas.chunks import chunk_plan
from edge_recorder.uplinks.aas.rest import AasRestClient
from edge_recorder.uplinks.auth import ClientCredentialsProvider
from edge_recorder.uplinks.base import ErrorKind, UplinkError
from tests.integration.uplinks.conftest import device_config, new_session, pcm_audio
from tests.support.emulator import EmulatorHandle, MakeEmulator, sha256

CHUNK = 16 * 1024


_OPEN: list[ClientCredentialsProvider] = []


@pytest.fixture(autouse=True)
async def _close_token_providers() -> AsyncIterator[None]:
    yield
    while _OPEN:
        await _OPEN.pop().aclose()


def rest_client(emu: EmulatorHandle, tmp_path: Path, **uplink: object) -> AasRestClient:
    cfg = device_config(emu, tmp_path, uplink={"rest_chunk_bytes": CHUNK, **uplink})
    tokens = ClientCredentialsProvider.from_config(cfg.auth)
    _OPEN.append(tokens)
    return AasRestClient.from_config(cfg, tokens)


async def test_upload_recording_end_to_end(aas_emulator: EmulatorHandle, tmp_path: Path) -> None:
    client = rest_client(aas_emulator, tmp_path)
    session = new_session(aas_emulator)
    audio = pcm_audio(5 * CHUNK + 123)
    progress: list[int] = []

    async def read(start: int, end: int) -> bytes:
        return audio[start:end]

    async def on_chunk(chunk_id: int) -> None:
        progress.append(chunk_id)

    try:
        await client.create_session(session)
        result = await client.upload_recording(session, 1, len(audio), read, on_chunk=on_chunk)
    finally:
        await client.aclose()
    assert result.total_chunks == 7 and progress == [1, 2, 3, 4, 5, 6, 7]
    rec = await aas_emulator.recording(session.correlation_id, 1)
    assert rec["state"] == "finalized" and rec["bytes"] == len(audio)
    assert rec["sha256"] == sha256(audio)
    assert await aas_emulator.recording_bytes(session.correlation_id, 1) == audio


async def test_out_of_order_chunks_and_finalize_first(
    aas_emulator: EmulatorHandle, tmp_path: Path
) -> None:
    client = rest_client(aas_emulator, tmp_path)
    session = new_session(aas_emulator)
    audio = pcm_audio(4 * CHUNK + 7, seed=2)
    plan = chunk_plan(len(audio), CHUNK)
    order = list(plan)
    random.Random(7).shuffle(order)
    try:
        await client.create_session(session)
        await client.finalize(session, 2, len(plan))  # declared before any chunk arrives
        for span in order:
            rec_state = (await aas_emulator.recording(session.correlation_id, 2))["state"]
            assert rec_state != "finalized"  # not complete until the last missing chunk
            await client.store_chunk(
                session, 2, span.chunk_id, audio[span.start : span.end], is_last=span.is_last
            )
    finally:
        await client.aclose()
    rec = await aas_emulator.recording(session.correlation_id, 2)
    assert rec["state"] == "finalized" and rec["missingChunks"] == []
    assert await aas_emulator.recording_bytes(session.correlation_id, 2) == audio


async def test_retry_after_crash_resends_identical_chunks(
    aas_emulator: EmulatorHandle, tmp_path: Path
) -> None:
    """A first attempt dies half way; a fresh client re-sends everything under the same ids."""
    session = new_session(aas_emulator)
    audio = pcm_audio(3 * CHUNK + 1, seed=3)

    async def read(start: int, end: int) -> bytes:
        return audio[start:end]

    first = rest_client(aas_emulator, tmp_path)
    try:
        await first.create_session(session)
        for span in chunk_plan(len(audio), CHUNK)[:3]:
            await first.store_chunk(
                session, 1, span.chunk_id, audio[span.start : span.end], is_last=span.is_last
            )
    finally:
        await first.aclose()
    second = rest_client(aas_emulator, tmp_path)
    try:
        await second.upload_recording(session, 1, len(audio), read)
        # and once more, as if the finalize answer had been lost
        await second.upload_recording(session, 1, len(audio), read)
    finally:
        await second.aclose()
    assert await aas_emulator.recording_bytes(session.correlation_id, 1) == audio


async def test_changed_bytes_under_a_chunk_id_is_a_conflict(
    aas_emulator: EmulatorHandle, tmp_path: Path
) -> None:
    client = rest_client(aas_emulator, tmp_path)
    session = new_session(aas_emulator)
    try:
        await client.create_session(session)
        await client.store_chunk(session, 1, 2, b"\x01" * 100, is_last=False)
        with pytest.raises(UplinkError) as info:
            await client.store_chunk(session, 1, 2, b"\x02" * 100, is_last=False)
    finally:
        await client.aclose()
    assert info.value.kind is ErrorKind.CONFLICT and info.value.status == 409
    assert not info.value.retryable
    assert "different content" in info.value.message


async def test_unknown_session_is_not_found_unless_skipped(
    aas_emulator: EmulatorHandle, tmp_path: Path
) -> None:
    client = rest_client(aas_emulator, tmp_path)
    session = new_session(aas_emulator)
    try:
        with pytest.raises(UplinkError) as info:
            await client.finalize(session, 1, 1)
        await client.finalize(session, 1, 1, skip_session_check=True)
    finally:
        await client.aclose()
    assert info.value.kind is ErrorKind.NOT_FOUND and not info.value.retryable
    assert "ambient session not found" in info.value.message
    rec = await aas_emulator.recording(session.correlation_id, 1)
    assert rec["totalChunks"] == 1 and rec["missingChunks"] == [1]


async def test_total_chunks_disagreement_is_invalid_with_server_message(
    aas_emulator: EmulatorHandle, tmp_path: Path
) -> None:
    client = rest_client(aas_emulator, tmp_path)
    session = new_session(aas_emulator)
    try:
        await client.create_session(session)
        await client.store_chunk(session, 1, 1, b"", is_last=False)
        await client.store_chunk(session, 1, 3, b"x" * 10, is_last=True)
        with pytest.raises(UplinkError) as info:
            await client.finalize(session, 1, 2)
    finally:
        await client.aclose()
    assert info.value.kind is ErrorKind.INVALID and info.value.status == 400
    assert not info.value.retryable
    assert "totalChunks 2 disagrees" in info.value.message


@pytest.mark.parametrize(
    ("status", "kind", "retryable"),
    [
        (500, ErrorKind.SERVER, True),
        (503, ErrorKind.UNAVAILABLE, True),
        (429, ErrorKind.THROTTLED, True),
        (400, ErrorKind.INVALID, False),
        (403, ErrorKind.FORBIDDEN, False),
    ],
)
async def test_server_errors_map_to_retryable_or_not(
    aas_emulator: EmulatorHandle,
    tmp_path: Path,
    status: int,
    kind: ErrorKind,
    retryable: bool,
) -> None:
    client = rest_client(aas_emulator, tmp_path)
    session = new_session(aas_emulator)
    try:
        await client.create_session(session)
        await aas_emulator.add_fault(kind="fail", target="rest", status=status, path="storeChunk")
        with pytest.raises(UplinkError) as info:
            await client.store_chunk(session, 1, 2, b"abc", is_last=False)
        await client.store_chunk(session, 1, 2, b"abc", is_last=False)  # fault consumed
    finally:
        await client.aclose()
    assert (info.value.kind, info.value.retryable, info.value.status) == (kind, retryable, status)
    assert "injected fault" in info.value.message


async def test_401_refreshes_the_token_once_and_succeeds(
    aas_emulator: EmulatorHandle, tmp_path: Path
) -> None:
    cfg = device_config(aas_emulator, tmp_path)
    tokens = ClientCredentialsProvider.from_config(cfg.auth)
    client = AasRestClient.from_config(cfg, tokens)
    session = new_session(aas_emulator)
    try:
        await client.create_session(session)
        assert tokens.fetch_count == 1
        await aas_emulator.add_fault(kind="fail", target="rest", status=401, path="finalize")
        await client.finalize(session, 1, 1)
        assert tokens.fetch_count == 2
        await aas_emulator.add_fault(kind="fail", target="rest", status=401, count=2)
        with pytest.raises(UplinkError) as info:
            await client.finalize(session, 1, 1)
    finally:
        await client.aclose()
        await tokens.aclose()
    assert tokens.fetch_count == 3  # exactly one refresh per call, then the error surfaces
    assert info.value.kind is ErrorKind.AUTH and not info.value.retryable


async def test_not_allow_listed_client_is_forbidden(
    make_aas_emulator: MakeEmulator, tmp_path: Path
) -> None:
    emu = await make_aas_emulator(extra_clients={"intruder": "s3cret"})
    secret = tmp_path / "intruder-secret"
    secret.write_text("s3cret")
    cfg = device_config(
        emu, tmp_path, auth={"client_id": "intruder", "client_secret_file": str(secret)}
    )
    tokens = ClientCredentialsProvider.from_config(cfg.auth)
    client = AasRestClient.from_config(cfg, tokens)
    try:
        with pytest.raises(UplinkError) as info:
            await client.create_session(new_session(emu))
    finally:
        await client.aclose()
        await tokens.aclose()
    assert info.value.kind is ErrorKind.FORBIDDEN and info.value.status == 403
    assert "allow list" in info.value.message and not info.value.retryable


async def test_unreachable_service_is_retryable(
    aas_emulator: EmulatorHandle, tmp_path: Path
) -> None:
    with socket.socket() as probe:  # a loopback port with nobody listening
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    cfg = device_config(aas_emulator, tmp_path, aas={"rest_url": f"http://127.0.0.1:{port}"})
    tokens = ClientCredentialsProvider.from_config(cfg.auth)
    client = AasRestClient.from_config(cfg, tokens)
    try:
        with pytest.raises(UplinkError) as info:
            await client.store_chunk(new_session(aas_emulator), 1, 2, b"x", is_last=True)
    finally:
        await client.aclose()
        await tokens.aclose()
    assert info.value.kind is ErrorKind.UNAVAILABLE and info.value.retryable


async def test_create_session_needs_external_user(
    aas_emulator: EmulatorHandle, tmp_path: Path
) -> None:
    client = rest_client(aas_emulator, tmp_path)
    try:
        with pytest.raises(UplinkError) as info:
            await client.create_session(new_session(aas_emulator, external_user_id=None))
    finally:
        await client.aclose()
    assert info.value.kind is ErrorKind.INVALID and "externalUserId" in info.value.message


async def test_parallel_upload_resumes_from_persisted_progress(
    aas_emulator: EmulatorHandle, tmp_path: Path
) -> None:
    """Four chunks in flight; a 500 mid-way surfaces as one UplinkError, and a retry that
    skips the chunks already accepted completes the recording byte-exactly."""
    client = rest_client(aas_emulator, tmp_path)
    client.concurrency = 4
    session = new_session(aas_emulator)
    audio = pcm_audio(12 * CHUNK + 5, seed=11)
    accepted: set[int] = set()

    async def read(start: int, end: int) -> bytes:
        return audio[start:end]

    async def on_chunk(chunk_id: int) -> None:
        accepted.add(chunk_id)

    try:
        await client.create_session(session)
        await aas_emulator.add_fault(kind="fail", target="rest", status=500, path="storeChunk")
        with pytest.raises(UplinkError) as info:
            await client.upload_recording(session, 1, len(audio), read, on_chunk=on_chunk)
        assert info.value.kind is ErrorKind.SERVER and info.value.retryable
        assert len(accepted) < 14
        result = await client.upload_recording(
            session, 1, len(audio), read, done=sorted(accepted), on_chunk=on_chunk
        )
    finally:
        await client.aclose()
    assert result.total_chunks == 14 and accepted == set(range(1, 15))
    assert await aas_emulator.recording_bytes(session.correlation_id, 1) == audio


async def test_not_allow_listed_as_401_costs_one_refresh_then_fails(
    make_aas_emulator: MakeEmulator, tmp_path: Path
) -> None:
    """The seed allows 401 JSON for an unrecognised application: one refresh, then AUTH."""
    emu = await make_aas_emulator(extra_clients={"intruder": "s3cret"}, not_allowlisted_status=401)
    secret = tmp_path / "intruder-secret"
    secret.write_text("s3cret")
    cfg = device_config(
        emu, tmp_path, auth={"client_id": "intruder", "client_secret_file": str(secret)}
    )
    tokens = ClientCredentialsProvider.from_config(cfg.auth)
    client = AasRestClient.from_config(cfg, tokens)
    try:
        with pytest.raises(UplinkError) as info:
            await client.create_session(new_session(emu))
    finally:
        await client.aclose()
        await tokens.aclose()
    assert info.value.kind is ErrorKind.AUTH and info.value.status == 401
    assert "allow list" in info.value.message and not info.value.retryable
    assert tokens.fetch_count == 2
