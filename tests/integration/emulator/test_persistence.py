"""Persistence across restarts and the inspection API."""

from __future__ import annotations

import uuid
import wave

import grpc

from edge_recorder._proto.ambient.audio.v1 import audio_streaming_pb2_grpc as pb_grpc
from tests.integration.emulator.conftest import (
    chunk_request,
    close_request,
    grpc_metadata,
    open_request,
)
from tests.support.emulator import sha256
from tests.support.helpers import wait_for

AUDIO = b"\x10\x00\x20\x00" * 2000


async def test_recordings_survive_restart_and_resume(aas_emulator, token) -> None:
    rid = str(uuid.uuid4())
    async with grpc.aio.insecure_channel(aas_emulator.grpc_target) as channel:
        call = pb_grpc.AudioStreamingServiceStub(channel).RecordAmbient(
            metadata=grpc_metadata(token)
        )
        await call.write(open_request("enc-persist", rid))
        await call.read()
        await call.write(chunk_request(0, AUDIO[:5000]))
        await call.read()
        call.cancel()

    async def stream_ended() -> bool:  # the server handles the cancel on its own time
        return not (await aas_emulator.session("enc-persist"))["recordings"][0]["streaming"]

    await wait_for(stream_ended, what="the emulator ending the cancelled stream")
    before = await aas_emulator.session("enc-persist")
    await aas_emulator.restart()
    after = await aas_emulator.session("enc-persist")
    assert after["recordings"] == before["recordings"]
    assert after["recordings"][0]["bytes"] == 5000
    async with grpc.aio.insecure_channel(aas_emulator.grpc_target) as channel:
        call = pb_grpc.AudioStreamingServiceStub(channel).RecordAmbient(
            metadata=grpc_metadata(token)
        )
        await call.write(open_request("enc-persist", rid, starting_offset=5000))
        assert (await call.read()).recording_opens.data_stored == 5000
        await call.write(chunk_request(5000, AUDIO[5000:]))
        await call.read()
        await call.write(close_request(rid, 0.25))
        await call.read()
    rec = await aas_emulator.recording("enc-persist", rid)
    assert rec["sha256"] == sha256(AUDIO)
    with wave.open(rec["file"], "rb") as wav:
        assert wav.getnframes() == len(AUDIO) // 2
        assert wav.readframes(len(AUDIO)) == AUDIO


async def test_inspection_lists_every_field(aas_emulator, http, token) -> None:
    rid = str(uuid.uuid4())
    async with grpc.aio.insecure_channel(aas_emulator.grpc_target) as channel:
        call = pb_grpc.AudioStreamingServiceStub(channel).RecordAmbient(
            metadata=grpc_metadata(token)
        )
        await call.write(open_request("enc-inspect", rid, sequence=3))
        await call.read()
        await call.write(chunk_request(0, AUDIO))
        await call.read()
        await call.write(close_request(rid))
        await call.read()
    async with http.get(aas_emulator.http_url + "/_emulator/sessions") as resp:
        listing = await resp.json()
    (session,) = [s for s in listing["sessions"] if s["correlationId"] == "enc-inspect"]
    (rec,) = session["recordings"]
    assert rec["transport"] == "grpc"
    assert rec["sequenceNumber"] == 3
    assert rec["bytes"] == len(AUDIO)
    assert rec["sha256"] == sha256(AUDIO)
    assert rec["state"] == "closed"
    assert rec["processingStarted"] is False
    assert rec["file"].endswith(".wav")
    async with http.get(aas_emulator.http_url + "/_emulator/sessions/enc-unknown") as resp:
        assert resp.status == 404
    async with http.get(aas_emulator.http_url + "/_emulator/info") as resp:
        info = await resp.json()
    assert info["grpcTarget"] == aas_emulator.grpc_target
    assert info["tokenUrl"] == aas_emulator.token_url
