"""gRPC front over real loopback: metadata rules, byte offsets, resume, faults, processing."""

from __future__ import annotations

import contextlib
import uuid

import grpc
import pytest

from edge_recorder._proto.ambient.audio.v1 import audio_streaming_pb2 as pb
from edge_recorder._proto.ambient.audio.v1 import audio_streaming_pb2_grpc as pb_grpc
from tests.integration.emulator.conftest import (
    chunk_request,
    close_request,
    grpc_metadata,
    open_request,
    session_data,
)

AUDIO = bytes(range(256)) * 40  # 10240 bytes


async def open_stream(stub, token, cid, rid, starting_offset=0):
    call = stub.RecordAmbient(metadata=grpc_metadata(token))
    await call.write(open_request(cid, rid, starting_offset))
    answer = await call.read()
    assert answer.WhichOneof("response") == "recording_opens"
    return call, answer.recording_opens


async def send(call, offset, data) -> int:
    await call.write(chunk_request(offset, data))
    answer = await call.read()
    assert answer.WhichOneof("response") == "data_stored", answer
    return answer.data_stored.data_stored


async def test_retrieve_configuration(make_aas_emulator, token_for) -> None:
    emu = await make_aas_emulator(
        max_recording_duration_s=1200, warning_lead_time_s=60, max_chunk_bytes=4096
    )
    async with grpc.aio.insecure_channel(emu.grpc_target) as channel:
        stub = pb_grpc.AudioStreamingServiceStub(channel)
        cfg = await stub.RetrieveConfiguration(
            pb.RetrieveConfigurationRequest(customer_id=emu.customer_id),
            metadata=grpc_metadata(await token_for(emu)),
        )
    assert cfg.max_recording_duration_seconds == 1200
    assert cfg.warning_lead_time_seconds == 60
    assert cfg.max_chunk_bytes == 4096
    kinds = {f.WhichOneof("format") for f in cfg.supported_formats}
    assert kinds == {"pcm", "opus", "webm_opus", "byte_stream"}
    assert "en-US" in cfg.locale_settings.recording_locales
    assert cfg.locale_settings.report_locales


@pytest.fixture
def token_for():
    async def get(emu):
        return await emu.fetch_token()

    return get


@pytest.mark.parametrize("authorization", [None, "Bearer nonsense", "Token abc", "Bearer a.b.c"])
async def test_missing_or_invalid_token_is_unauthenticated(stub, authorization) -> None:
    metadata = [("external-user-id", "dr")]
    if authorization:
        metadata.append(("authorization", authorization))
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.RetrieveConfiguration(pb.RetrieveConfigurationRequest(), metadata=metadata)
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_expired_token_is_unauthenticated(aas_emulator, stub) -> None:
    expired = await aas_emulator.mint_token(lifetimeS=-5)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.RetrieveConfiguration(
            pb.RetrieveConfigurationRequest(), metadata=grpc_metadata(expired)
        )
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert "expired" in err.value.details()


async def test_s2s_token_without_user_is_permission_denied(stub, token) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.RetrieveConfiguration(
            pb.RetrieveConfigurationRequest(), metadata=grpc_metadata(token, user=False)
        )
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "user-guid or external-user-id" in err.value.details()
    ok = [("authorization", f"Bearer {token}"), ("user-guid", str(uuid.uuid4()))]
    await stub.RetrieveConfiguration(pb.RetrieveConfigurationRequest(), metadata=ok)


async def test_user_token_needs_no_user_header(aas_emulator, stub) -> None:
    user_token = await aas_emulator.mint_token(appOnly=False)
    await stub.RetrieveConfiguration(
        pb.RetrieveConfigurationRequest(), metadata=grpc_metadata(user_token, user=False)
    )


async def test_client_not_allow_listed_is_permission_denied(aas_emulator, stub) -> None:
    stranger = await aas_emulator.mint_token(clientId="stranger")
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.RetrieveConfiguration(
            pb.RetrieveConfigurationRequest(), metadata=grpc_metadata(stranger)
        )
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED


async def test_record_ambient_stream_and_offsets(aas_emulator, stub, token) -> None:
    rid = str(uuid.uuid4())
    call, opened = await open_stream(stub, token, "enc-grpc", rid)
    assert (opened.data_stored, opened.sequence_number) == (0, 1)
    assert await send(call, 0, AUDIO[:4000]) == 4000
    assert await send(call, 4000, AUDIO[4000:8000]) == 8000
    # the same bytes again at a stored offset: acknowledged, ignored
    assert await send(call, 2000, AUDIO[2000:6000]) == 8000
    # overlapping resend plus new tail: only the tail is appended
    assert await send(call, 6000, AUDIO[6000:]) == len(AUDIO)
    await call.write(close_request(rid, 0.32))
    closes = await call.read()
    assert closes.recording_closes.data_stored == len(AUDIO)
    assert await call.read() == grpc.aio.EOF
    rec = await aas_emulator.recording("enc-grpc", rid)
    assert (rec["state"], rec["transport"], rec["bytes"]) == ("closed", "grpc", len(AUDIO))
    assert await aas_emulator.recording_bytes("enc-grpc", rid) == AUDIO


async def test_different_bytes_at_stored_offset_is_an_error(aas_emulator, stub, token) -> None:
    rid = str(uuid.uuid4())
    call, _ = await open_stream(stub, token, "enc-conflict", rid)
    await send(call, 0, b"\x01" * 100)
    await call.write(chunk_request(50, b"\x02" * 10))
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await call.read()
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "differ" in err.value.details()
    assert (await aas_emulator.recording("enc-conflict", rid))["bytes"] == 100


async def test_gap_is_an_error_naming_the_held_bytes(stub, token) -> None:
    call, _ = await open_stream(stub, token, "enc-gap", str(uuid.uuid4()))
    await send(call, 0, b"\x01" * 100)
    await call.write(chunk_request(150, b"\x02" * 10))
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await call.read()
    assert err.value.code() == grpc.StatusCode.OUT_OF_RANGE
    assert "holds 100 bytes" in err.value.details()


async def test_reopen_with_starting_offset_continues(aas_emulator, stub, token) -> None:
    rid = str(uuid.uuid4())
    call, _ = await open_stream(stub, token, "enc-resume", rid)
    await send(call, 0, AUDIO[:3000])
    call.cancel()  # the link breaks: no RecordingClose
    rec = await aas_emulator.recording("enc-resume", rid)
    assert (rec["state"], rec["bytes"]) == ("open", 3000)
    call, opened = await open_stream(stub, token, "enc-resume", rid, starting_offset=3000)
    assert opened.data_stored == 3000
    assert opened.sequence_number == 1  # the same recording, not a new one
    assert await send(call, 3000, AUDIO[3000:]) == len(AUDIO)
    await call.write(close_request(rid))
    assert (await call.read()).recording_closes.data_stored == len(AUDIO)
    assert await aas_emulator.recording_bytes("enc-resume", rid) == AUDIO


async def test_drop_stream_fault_keeps_the_prefix(aas_emulator, stub, token) -> None:
    await aas_emulator.add_fault(kind="drop_stream", target="grpc", afterBytes=5000)
    rid = str(uuid.uuid4())
    call, _ = await open_stream(stub, token, "enc-drop", rid)
    assert await send(call, 0, AUDIO[:4000]) == 4000
    await call.write(chunk_request(4000, AUDIO[4000:8000]))
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await call.read()
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE
    assert await aas_emulator.faults() == []  # consumed
    call, opened = await open_stream(stub, token, "enc-drop", rid, starting_offset=4000)
    assert opened.data_stored == 5000  # the server kept more than the client saw acked
    assert await send(call, 4000, AUDIO[4000:]) == len(AUDIO)
    await call.write(close_request(rid))
    await call.read()
    assert await aas_emulator.recording_bytes("enc-drop", rid) == AUDIO


async def test_resume_of_a_forgotten_recording_is_refused(aas_emulator, stub, token) -> None:
    rid = str(uuid.uuid4())
    call, _ = await open_stream(stub, token, "enc-forget", rid)
    await send(call, 0, AUDIO[:2000])
    call.cancel()
    await aas_emulator.forget_recording("enc-forget", rid)
    call = stub.RecordAmbient(metadata=grpc_metadata(token))
    await call.write(open_request("enc-forget", rid, 2000))
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await call.read()
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    assert "cannot resume at offset 2000" in err.value.details()
    session = await aas_emulator.session("enc-forget")
    assert all(r["recordingId"] != rid for r in session["recordings"])  # not re-created empty


async def test_resume_beyond_the_held_bytes_is_refused(stub, token) -> None:
    rid = str(uuid.uuid4())
    call, _ = await open_stream(stub, token, "enc-short", rid)
    await send(call, 0, AUDIO[:500])
    call.cancel()
    call = stub.RecordAmbient(metadata=grpc_metadata(token))
    await call.write(open_request("enc-short", rid, 900))
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await call.read()
    assert err.value.code() == grpc.StatusCode.OUT_OF_RANGE
    assert "holds 500 bytes" in err.value.details()


async def test_invalid_open_is_invalid_argument(stub, token) -> None:
    call = stub.RecordAmbient(metadata=grpc_metadata(token))
    await call.write(open_request("enc-bad", "not-a-guid"))
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await call.read()
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "GUID" in err.value.details()


async def test_chunk_before_open_is_refused(stub, token) -> None:
    call = stub.RecordAmbient(metadata=grpc_metadata(token))
    await call.write(chunk_request(0, b"x"))
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await call.read()
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION


async def test_start_processing(aas_emulator, stub, token) -> None:
    cid = "enc-process"
    rids = [str(uuid.uuid4()), str(uuid.uuid4())]
    for rid in rids:
        call, _ = await open_stream(stub, token, cid, rid)
        await send(call, 0, AUDIO[:1000])
        if rid == rids[0]:
            await call.write(close_request(rid))
            await call.read()
    request = pb.StartProcessingRequest(ambient_session_data=session_data(cid))
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.StartProcessing(request, metadata=grpc_metadata(token))
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert rids[1] in err.value.details()
    call.cancel()
    call, _ = await open_stream(stub, token, cid, rids[1], starting_offset=1000)
    await call.write(close_request(rids[1]))
    await call.read()
    answer = await stub.StartProcessing(request, metadata=grpc_metadata(token))
    assert (answer.correlation_id, answer.recording_count, answer.total_bytes) == (cid, 2, 2000)
    session = await aas_emulator.session(cid)
    assert session["processingStarted"] is True
    assert [r["sequenceNumber"] for r in session["recordings"]] == [1, 2]
    assert all(r["state"] == "finalized" for r in session["recordings"])
    unknown = pb.StartProcessingRequest(ambient_session_data=session_data("enc-none"))
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.StartProcessing(unknown, metadata=grpc_metadata(token))
    assert err.value.code() == grpc.StatusCode.NOT_FOUND


async def test_fail_next_requests_fault(aas_emulator, stub, token) -> None:
    await aas_emulator.add_fault(kind="fail", target="grpc", status=503, count=2)
    for _ in range(2):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.RetrieveConfiguration(
                pb.RetrieveConfigurationRequest(), metadata=grpc_metadata(token)
            )
        assert err.value.code() == grpc.StatusCode.UNAVAILABLE
    await stub.RetrieveConfiguration(
        pb.RetrieveConfigurationRequest(), metadata=grpc_metadata(token)
    )


async def test_opus_recording_is_stored_as_ogg(aas_emulator, stub, token) -> None:
    rid = str(uuid.uuid4())
    request = open_request("enc-opus", rid)
    request.recording_open.data_format.CopyFrom(
        pb.DataFormat(opus=pb.OpusFormat(sample_rate_hz=16000, channels=1))
    )
    call = stub.RecordAmbient(metadata=grpc_metadata(token))
    await call.write(request)
    await call.read()
    await send(call, 0, b"OggS" + b"\x00" * 60)
    await call.write(close_request(rid))
    await call.read()
    rec = await aas_emulator.recording("enc-opus", rid)
    assert rec["file"].endswith(".ogg")
    assert rec["dataFormat"] == {"opus": {"sampleRateHz": 16000, "channels": 1}}


async def test_record_ambient_checks_metadata_too(stub, token) -> None:
    call = stub.RecordAmbient(metadata=[("external-user-id", "dr")])
    # the server may refuse before the first write lands: the write then raises the status
    with contextlib.suppress(grpc.aio.AioRpcError):
        await call.write(open_request("enc-noauth", str(uuid.uuid4())))
    assert await call.code() == grpc.StatusCode.UNAUTHENTICATED
    call = stub.RecordAmbient(metadata=grpc_metadata(token, user=False))
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await call.read()
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED


async def test_oversized_chunk_is_refused(make_aas_emulator) -> None:
    emu = await make_aas_emulator(max_chunk_bytes=1024)
    token = await emu.fetch_token()
    async with grpc.aio.insecure_channel(emu.grpc_target) as channel:
        stub = pb_grpc.AudioStreamingServiceStub(channel)
        call, _ = await open_stream(stub, token, "enc-big", str(uuid.uuid4()))
        await call.write(chunk_request(0, b"x" * 2000))
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await call.read()
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "exceeds 1024 bytes" in err.value.details()
