"""The AAS live transports against the emulator at `fidelity = "live"`: no open is ever
answered, the WebSocket answers only a delegated user token, and the device's waits are all
bounded. What the device does with these answers is in tests/integration/delivery."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import pytest

from edge_recorder.uplinks.aas.factory import live_streamer
from edge_recorder.uplinks.auth import ClientCredentialsProvider
from edge_recorder.uplinks.base import NO_ANSWER, DataFormat, ErrorKind, RecordingRef, UplinkError
from tests.integration.uplinks.conftest import (
    CHUNK_100MS,
    chunks,
    device_config,
    new_session,
    pcm_audio,
)
from tests.support.emulator import EmulatorHandle, MakeEmulator, sha256

PCM = DataFormat("pcm", 16000, 16, 1)
QUICK_OPEN = {"open_answer_s": 0.5}


async def delegated_file(emu: EmulatorHandle, path: Path, **spec: object) -> Path:
    token = await emu.mint_token(appOnly=False, **spec)
    await asyncio.to_thread(path.write_text, token + "\n")
    return path


async def test_a_delegated_token_streams_over_the_live_websocket_without_an_open_answer(
    make_aas_emulator: MakeEmulator, tmp_path: Path
) -> None:
    emu = await make_aas_emulator(fidelity="live")
    token_file = await delegated_file(emu, tmp_path / "delegated.jwt")
    cfg = device_config(
        emu, tmp_path, uplink={"live_transport": "websocket"}, aas=QUICK_OPEN,
        auth={"delegated_token_file": str(token_file)},
    )  # fmt: skip
    tokens = ClientCredentialsProvider.from_config(cfg.auth)  # REST's; the live one is the file
    client = live_streamer(cfg, tokens)
    try:
        session, rec = new_session(emu), RecordingRef.new(1)
        audio = pcm_audio(12 * CHUNK_100MS + 7, seed=3)
        live = await client.open_recording(session, rec, PCM)
        assert not live.open_confirmed and live.resume_offset == 0
        for offset, data in chunks(audio):
            await live.send(offset, data)
        assert await live.wait_confirmed(len(audio), 5.0) == len(audio)
        assert live.answered and not live.open_confirmed
        assert await live.close() == len(audio)
        stored = await emu.recording(session.correlation_id, rec.guid)
        assert stored["sha256"] == sha256(audio) and stored["transport"] == "ws"
        assert tokens.fetch_count == 0  # the app-only token was never used live
    finally:
        await client.aclose()
        await tokens.aclose()


async def test_resuming_needs_an_answered_open(
    make_aas_emulator: MakeEmulator, tmp_path: Path
) -> None:
    """Without the server's word on what it holds, the device does not send from an offset."""
    emu = await make_aas_emulator(fidelity="live")
    token_file = await delegated_file(emu, tmp_path / "delegated.jwt")
    cfg = device_config(
        emu, tmp_path, uplink={"live_transport": "websocket"}, aas=QUICK_OPEN,
        auth={"delegated_token_file": str(token_file)},
    )  # fmt: skip
    client = live_streamer(cfg, ClientCredentialsProvider.from_config(cfg.auth))
    try:
        session, rec = new_session(emu), RecordingRef.new(1)
        first = await client.open_recording(session, rec, PCM)
        for offset, data in chunks(pcm_audio(4 * CHUNK_100MS)):
            await first.send(offset, data)
        held = await first.wait_confirmed(4 * CHUNK_100MS, 5.0)
        await first.abort()  # a broken stream: the server holds `held` bytes
        with pytest.raises(UplinkError) as info:
            await client.open_recording(session, rec, PCM, starting_offset=held)
        assert info.value.status == NO_ANSWER and "has not shown it can resume" in str(info.value)
    finally:
        await client.aclose()


async def test_a_silent_grpc_stream_is_a_bounded_error_not_a_hang(
    make_aas_emulator: MakeEmulator, tmp_path: Path
) -> None:
    emu = await make_aas_emulator(fidelity="live")
    cfg = device_config(emu, tmp_path, aas={**QUICK_OPEN, "close_answer_s": 0.5})
    tokens = ClientCredentialsProvider.from_config(cfg.auth)
    client = live_streamer(cfg, tokens)
    try:
        live = await client.open_recording(new_session(emu), RecordingRef.new(1), PCM)
        assert not live.open_confirmed
        await live.send(0, pcm_audio(CHUNK_100MS))
        with pytest.raises(UplinkError) as acked:
            await live.wait_confirmed(CHUNK_100MS, 0.5)
        assert acked.value.kind is ErrorKind.UNAVAILABLE and not live.answered
        with pytest.raises(UplinkError) as closed:
            await live.close()
        assert closed.value.kind is ErrorKind.UNAVAILABLE and closed.value.retryable
    finally:
        await client.aclose()
        await tokens.aclose()


async def test_an_expired_delegated_token_is_named_and_a_renewed_one_is_picked_up(
    make_aas_emulator: MakeEmulator, tmp_path: Path
) -> None:
    emu = await make_aas_emulator(fidelity="live")
    token_file = await delegated_file(emu, tmp_path / "delegated.jwt", lifetimeS=-60)
    cfg = device_config(
        emu, tmp_path, uplink={"live_transport": "websocket"},
        auth={"delegated_token_file": str(token_file)},
    )  # fmt: skip
    client = live_streamer(cfg, ClientCredentialsProvider.from_config(cfg.auth))
    try:
        with pytest.raises(UplinkError) as info:
            await client.retrieve_configuration(new_session(emu))
        assert info.value.kind is ErrorKind.AUTH
        assert str(token_file) in str(info.value) and "expired" in str(info.value)
        await delegated_file(emu, token_file)  # the site's agent renews it
        later = time.time() + 5  # a new mtime even on a coarse-clock file system
        os.utime(token_file, (later, later))
        conf = await client.retrieve_configuration(new_session(emu))
        assert conf.max_chunk_bytes == emu.settings.max_chunk_bytes
    finally:
        await client.aclose()
