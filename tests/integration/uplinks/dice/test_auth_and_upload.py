"""Sign-in, refresh and 401 handling; store-and-forward streams; emulator persistence."""

from __future__ import annotations

import asyncio
import json
import socket

import aiohttp
import pytest

from edge_recorder.uplinks.base import (
    DataFormat,
    ErrorKind,
    RecordingRef,
    SessionIdentity,
    UplinkError,
)
from edge_recorder.uplinks.dice.client import upload_key
from tests.integration.uplinks.dice.conftest import SECOND, Rig, speechlike

PCM = DataFormat("pcm", 16000, 16, 1)
REC = RecordingRef("0b7d4b1e-2f4a-4c55-9a53-1c1a0e7d9b10", 1)


async def upgrade_status(url: str, token: str) -> int:
    async with aiohttp.ClientSession() as http:
        try:
            ws = await http.ws_connect(url, headers={"Authorization": f"Bearer {token}"})
        except aiohttp.WSServerHandshakeError as exc:
            return exc.status
        await ws.close()
        return 101


async def test_refresh_revokes_the_old_pair_at_the_emulator(rig: Rig) -> None:
    first = await rig.emu.sign_in()
    assert {"access_token", "refresh_token", "token_type"} <= set(first)
    assert await upgrade_status(rig.emu.ws_url, first["access_token"]) == 101
    form = {"grant_type": "refresh_token", "refresh_token": first["refresh_token"]}
    async with aiohttp.ClientSession() as http:
        async with http.post(rig.emu.token_url, data=form) as resp:
            assert resp.status == 200
            second = await resp.json()
        async with http.post(rig.emu.token_url, data=form) as resp:  # the old refresh token
            assert resp.status == 401
        async with http.post(rig.emu.token_url, data={"grant_type": "password"}) as resp:
            assert resp.status == 422
            assert {d["loc"][-1] for d in (await resp.json())["detail"]} == {"username", "password"}
    assert await upgrade_status(rig.emu.ws_url, first["access_token"]) == 401  # revoked
    assert await upgrade_status(rig.emu.ws_url, second["access_token"]) == 101
    assert await upgrade_status(rig.emu.ws_url, "forged") == 401


async def test_a_401_on_upgrade_refreshes_once_and_retries(
    rig: Rig, session: SessionIdentity
) -> None:
    client, tokens = rig.client(refresh_url=rig.emu.refresh_url)
    await tokens.token()
    await rig.emu.add_fault(kind="expire_tokens")  # the server now refuses the cached token
    stream = await client.open_recording(session, REC, PCM)
    await stream.abort()
    assert (tokens.sign_ins, tokens.refreshes) == (1, 1)  # refreshed via refresh_url, no sign-in
    assert rig.emu.tokens.refreshes == 1


async def test_revoked_tokens_make_the_client_sign_in_again(
    rig: Rig, session: SessionIdentity
) -> None:
    client, tokens = rig.client()
    await tokens.token()
    await rig.emu.add_fault(kind="revoke_tokens")  # refresh token revoked too
    stream = await client.open_recording(session, REC, PCM)
    await stream.abort()
    assert (tokens.sign_ins, tokens.refreshes) == (2, 0)


async def test_sign_in_and_upgrade_refusals_become_errors_by_kind(
    rig: Rig, session: SessionIdentity
) -> None:
    client, tokens = rig.client()
    (rig.tmp / "dice-password").write_text("wrong\n")
    with pytest.raises(UplinkError) as refused:
        await client.open_recording(session, REC, PCM)
    assert refused.value.kind is ErrorKind.AUTH and refused.value.transport == "auth"
    assert refused.value.message == "Incorrect username or password"
    assert not refused.value.retryable
    (rig.tmp / "dice-password").write_text(rig.emu.password)

    await rig.emu.add_fault(kind="fail", target="token", status=503)
    with pytest.raises(UplinkError) as down:
        await tokens.token()
    assert down.value.kind is ErrorKind.UNAVAILABLE and down.value.retryable

    for status, kind in ((503, ErrorKind.UNAVAILABLE), (403, ErrorKind.FORBIDDEN)):
        await rig.emu.add_fault(kind="fail", target="ws", status=status)
        with pytest.raises(UplinkError) as upgrade:
            await client.open_recording(session, REC, PCM)
        assert upgrade.value.kind is kind and upgrade.value.status == status
    assert await rig.emu.sessions() == []


async def test_probe_reports_the_stream_limits_and_an_unreachable_host(
    rig: Rig, session: SessionIdentity
) -> None:
    client, _ = rig.client()
    conf = await client.retrieve_configuration(session)
    assert conf.max_recording_duration_s == 3600.0 and conf.warn_before_s == 60.0
    assert await rig.emu.sessions() == []  # the probe opened no stream
    sock = socket.socket()  # a port nobody listens on: bind one, then close it
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    dead, _ = rig.client(url=f"ws://127.0.0.1:{port}/v1/scribe/server")
    with pytest.raises(UplinkError) as down:
        await dead.retrieve_configuration(session)
    assert down.value.kind is ErrorKind.UNAVAILABLE


async def test_store_and_forward_is_one_stream_and_is_not_repeated(
    rig: Rig, session: SessionIdentity
) -> None:
    client, _ = rig.client()
    data = speechlike(5.2)
    reads: list[tuple[int, int]] = []

    async def read(start: int, end: int) -> bytes:
        reads.append((start, end))
        return data[start:end]

    result = await client.upload_recording(session, 2, len(data), read, chunk_bytes=4096)
    (emitted,) = await rig.emu.sessions()
    assert await rig.emu.stream_bytes(1) == data and emitted["state"] == "stopped"
    assert result.request_id == emitted["streamId"]
    assert rig.state.get(upload_key("enc-1", 2)) == "done"
    again = await client.upload_recording(session, 2, len(data), read)
    assert again.request_id == "already delivered" and len(await rig.emu.sessions()) == 1
    started = await client.start_processing(session)
    assert (started.recording_count, started.total_bytes) == (1, len(data))


async def test_an_interrupted_upload_resumes_from_the_confirmed_offset(
    rig: Rig, session: SessionIdentity
) -> None:
    client, _ = rig.client()
    data = speechlike(8.0)

    async def read(start: int, end: int) -> bytes:
        return data[start:end]

    await rig.emu.add_fault(kind="drop_stream", afterBytes=5 * SECOND)
    with pytest.raises(UplinkError) as broke:
        await client.upload_recording(session, 1, len(data), read)
    assert broke.value.kind is ErrorKind.UNAVAILABLE
    kept = int(rig.state.get(upload_key("enc-1", 1)) or 0)
    assert 0 < kept <= 5 * SECOND
    await client.upload_recording(session, 1, len(data), read)
    first, second = await rig.emu.stream_bytes(1), await rig.emu.stream_bytes(2)
    assert first == data[: len(first)] and second == data[kept:]
    assert len(first) - kept <= 2 * SECOND  # overlap: what was in flight, never a gap


async def test_streams_and_tokens_survive_an_emulator_restart(
    rig: Rig, session: SessionIdentity
) -> None:
    client, tokens = rig.client()
    data = speechlike(1.5)

    async def read(start: int, end: int) -> bytes:
        return data[start:end]

    await client.upload_recording(session, 1, len(data), read)
    before = await rig.emu.sessions()
    await rig.emu.restart()
    assert await rig.emu.sessions() == before
    assert await rig.emu.stream_bytes(1) == data
    stream = await client.open_recording(session, REC, PCM)  # the cached token still works
    await stream.abort()
    assert tokens.sign_ins == 1


@pytest.mark.parametrize(
    ("messages", "expected"),
    [
        ([{"object": "audio_chunk", "payload": "AAAA", "stream_id": "a"}], "stream_request comes"),
        ([{"object": "stream_request", "language": "de-DE"}], "output_objects"),
        (["REQ", {**{"object": "stream_request"}, "x": 1}], "already received"),
        (["REQ", {"object": "audio_chunk", "payload": "!!", "stream_id": "a"}], "base64"),
        (["REQ", {"object": "audio_chunk", "payload": "AAAA", "stream_id": "a"}], "16-bit"),
        (["REQ", {"object": "audio_chunk", "payload": "AAAA", "stream_id": "b"}], "unknown"),
        (["REQ", {"object": "audio_chunk", "payload": "A" * 42672, "stream_id": "a"}], "max 1 s"),
        (["REQ", {"object": "hello"}], "unknown message object"),
    ],
)
async def test_the_emulator_answers_bad_input_with_error_msg(
    rig: Rig, messages: list[object], expected: str
) -> None:
    request = {
        "object": "stream_request",
        "output_objects": "transcript",
        "streams": [{"id": "a", "speaker": "unknown"}],
        "sample_rate": 16000,
        "language": "en-US",
        "note_template": "soap",
        "style": "auto",
        "transcribe_gen_mode": "fast",
        "note_gen_mode": "best",
    }
    token = (await rig.emu.sign_in())["access_token"]
    async with aiohttp.ClientSession() as http:
        ws = await http.ws_connect(rig.emu.ws_url, headers={"Authorization": f"Bearer {token}"})
        for message in messages:
            await ws.send_str(json.dumps(request if message == "REQ" else message))
        answer = await asyncio.wait_for(ws.receive_json(), 5)
        assert answer["object"] == "error_msg" and expected in answer["message"]
        closing = await asyncio.wait_for(ws.receive(), 5)
        assert closing.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
        assert ws.close_code == 1008
    (emitted,) = await rig.emu.sessions()
    assert emitted["state"] == "error" and expected in emitted["error"]
