"""The AWS scribe client against the real emulator on 127.0.0.1: HTTP/2 over TLS, SigV4 request
and chained event signatures, event-stream framing, transcript-derived acknowledgements."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from edge_recorder.uplinks.aws.client import AwsScribeClient
from edge_recorder.uplinks.aws.stream import AwsStream
from edge_recorder.uplinks.base import (
    Ack,
    DataFormat,
    ErrorKind,
    RecordingRef,
    SessionIdentity,
    UplinkError,
)
from tests.support.aws_emulator import (
    ACCESS_KEY,
    SECRET_KEY,
    AwsEmulatorHandle,
    ClientFactory,
    MemoryState,
)
from tests.support.pki import make_pki

ID = SessionIdentity.local("enc-aws-1")
AUDIO = bytes(range(256)) * 500  # 128000 bytes = 4 s of 16 kHz s16le


async def _stream_all(
    client: AwsScribeClient, data: bytes, start: int = 0
) -> tuple[int, list[Ack]]:
    stream = await client.open_recording(ID, RecordingRef.new(1), DataFormat(), start)
    acks: list[Ack] = []

    async def pump() -> None:
        async for ack in stream.acks():
            acks.append(ack)

    task = asyncio.create_task(pump())
    await stream.send(start, data[start:])
    held = await stream.close()
    await task
    return held, acks


@pytest.mark.parametrize("service", ["aws-healthscribe", "aws-connect-health"])
async def test_stream_delivers_exact_bytes_and_counts_segments(
    aws_client: ClientFactory, aws_emulator: AwsEmulatorHandle, service: str
) -> None:
    client = aws_client(service=service)
    config = await client.retrieve_configuration(ID)
    assert config.max_recording_duration_s == (7200 if service == "aws-healthscribe" else None)
    held, acks = await _stream_all(client, AUDIO)
    assert held == len(AUDIO)
    assert acks[-1] == Ack(len(AUDIO), final=True)
    mid = [a.stored for a in acks if not a.final]
    assert mid == [32000, 64000, 96000, 128000]  # partial (1 s), final (2 s), ...
    (session,) = await aws_emulator.sessions()
    assert session["service"] == service and session["completed"] is True
    assert session["streams"][0]["ended"] == "end_of_session"
    assert await aws_emulator.session_bytes(session["session_id"]) == AUDIO
    started = await client.start_processing(ID)
    refs = dict(started.references)
    assert refs["aws_session"] == session["session_id"]
    assert refs["transcript_segments"] == "2" and refs["partial_segments"] == "2"


async def test_wrong_secret_is_refused_by_the_emulator_as_auth(
    aws_client: ClientFactory, aws_emulator: AwsEmulatorHandle, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret")
    client = aws_client()
    with pytest.raises(UplinkError) as err:
        await client.open_recording(ID, RecordingRef.new(1), DataFormat())
    assert err.value.kind is ErrorKind.AUTH and err.value.status == 403
    assert "signature" in err.value.message
    assert await aws_emulator.sessions() == []


async def test_unknown_access_key_is_auth(
    aws_client: ClientFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDSOMEONEELSE")
    with pytest.raises(UplinkError) as err:
        await aws_client().open_recording(ID, RecordingRef.new(1), DataFormat())
    assert err.value.kind is ErrorKind.AUTH and "UnrecognizedClientException" in str(err.value)


async def test_no_credentials_anywhere_is_a_clear_auth_error(
    aws_client: ClientFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    with pytest.raises(UplinkError) as err:
        await aws_client().retrieve_configuration(ID)
    assert err.value.kind is ErrorKind.AUTH and "no AWS credentials" in err.value.message


async def test_shared_credentials_file_profile(
    aws_client: ClientFactory, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    path = tmp_path / "creds"
    path.write_text(
        f"[device]\naws_access_key_id = {ACCESS_KEY}\naws_secret_access_key = {SECRET_KEY}\n"
    )
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(path))
    held, _ = await _stream_all(aws_client(profile="device"), AUDIO[:32000])
    assert held == 32000


async def test_tampered_event_signature_is_rejected_mid_stream(
    aws_client: ClientFactory, aws_emulator: AwsEmulatorHandle
) -> None:
    stream = await aws_client().open_recording(ID, RecordingRef.new(1), DataFormat())
    assert isinstance(stream, AwsStream) and stream._signer is not None
    stream._signer.prior_hex = "00" * 32  # the chain breaks at the next event
    await stream.send(0, AUDIO[:3200])
    with pytest.raises(UplinkError) as err:
        async for _ in stream.acks():
            pass
    assert err.value.kind is ErrorKind.AUTH and "event signature" in err.value.message
    (session,) = await aws_emulator.sessions()
    assert session["streams"][0]["ended"] == "rejected" and session["audio_bytes"] == 0
    await stream.abort()


async def test_corrupt_frame_crc_is_rejected_as_invalid(
    aws_client: ClientFactory, aws_emulator: AwsEmulatorHandle
) -> None:
    stream = await aws_client().open_recording(ID, RecordingRef.new(1), DataFormat())
    assert isinstance(stream, AwsStream) and stream._request is not None
    frame = bytearray(b"\x00\x00\x00\x20\x00\x00\x00\x00" + b"\x00" * 24)  # bad prelude CRC
    await stream._request.write(bytes(frame))
    with pytest.raises(UplinkError) as err:
        async for _ in stream.acks():
            pass
    assert err.value.kind is ErrorKind.INVALID and "CRC" in err.value.message
    await stream.abort()


async def test_header_limits_enforced_by_the_emulator(aws_client: ClientFactory) -> None:
    client = aws_client()
    client.spec = type(client.spec)("pcm", 8000, 16000, 2)  # HealthScribe needs >= 16 kHz
    with pytest.raises(UplinkError) as err:
        await client.open_recording(ID, RecordingRef.new(1), DataFormat())
    assert err.value.kind is ErrorKind.INVALID and "sample-rate must be 16000-48000" in str(
        err.value
    )


@pytest.mark.parametrize(
    ("status", "exception", "kind"),
    [
        (429, "ThrottlingException", ErrorKind.THROTTLED),
        (402, "ServiceQuotaExceededException", ErrorKind.THROTTLED),
        (500, "InternalServerException", ErrorKind.SERVER),
        (404, "ResourceNotFoundException", ErrorKind.FORBIDDEN),
        (400, "ValidationException", ErrorKind.INVALID),
    ],
)
async def test_documented_errors_map_to_kinds(
    aws_client: ClientFactory,
    aws_emulator: AwsEmulatorHandle,
    status: int,
    exception: str,
    kind: ErrorKind,
) -> None:
    await aws_emulator.fault(kind="http_error", status=status, exception=exception)
    with pytest.raises(UplinkError) as err:
        await aws_client(service="aws-connect-health").open_recording(
            ID, RecordingRef.new(1), DataFormat()
        )
    assert err.value.kind is kind and err.value.status == status


async def test_exception_event_mid_stream_is_a_server_error(
    aws_client: ClientFactory, aws_emulator: AwsEmulatorHandle
) -> None:
    await aws_emulator.fault(
        kind="exception", after_bytes=32000, exception="internalFailureException"
    )
    client = aws_client(service="aws-connect-health")
    stream = await client.open_recording(ID, RecordingRef.new(1), DataFormat())
    await stream.send(0, AUDIO[:32000])
    with pytest.raises(UplinkError) as err:
        async for _ in stream.acks():
            pass
    assert err.value.kind is ErrorKind.SERVER and err.value.retryable
    await stream.abort()


async def test_sessions_survive_an_emulator_restart(
    aws_client: ClientFactory, aws_emulator: AwsEmulatorHandle
) -> None:
    await _stream_all(aws_client(), AUDIO)
    (before,) = await aws_emulator.sessions()
    await aws_emulator.restart()
    (after,) = await aws_emulator.sessions()
    assert after["session_id"] == before["session_id"] and after["completed"]
    assert await aws_emulator.stream_bytes(after["session_id"], 0) == AUDIO


async def test_store_forward_upload_is_one_session_and_idempotent(
    aws_client: ClientFactory, aws_emulator: AwsEmulatorHandle
) -> None:
    state = MemoryState()
    client = aws_client(state=state)

    async def read(start: int, end: int) -> bytes:
        return AUDIO[start:end]

    first = await client.upload_recording(ID, 3, len(AUDIO), read, chunk_bytes=40000)
    again = await client.upload_recording(ID, 3, len(AUDIO), read, chunk_bytes=40000)
    assert first.request_id == again.request_id
    (session,) = await aws_emulator.sessions()
    assert session["session_id"] == first.request_id and session["completed"]
    assert await aws_emulator.session_bytes(first.request_id) == AUDIO


async def test_audio_beyond_the_session_limit_is_refused(
    aws_client: ClientFactory, aws_emulator: AwsEmulatorHandle
) -> None:
    aws_emulator.emulator.settings.max_audio_s = 2.0  # HealthScribe: 2 h; scaled down here
    stream = await aws_client().open_recording(ID, RecordingRef.new(1), DataFormat())
    with pytest.raises(UplinkError) as err:
        await stream.send(0, AUDIO[:96000])
        async for _ in stream.acks():
            pass
    assert err.value.kind is ErrorKind.INVALID and "more than 2s of audio" in err.value.message
    await stream.abort()


async def test_a_wrong_ca_is_a_clear_tls_error(aws_client: ClientFactory, tmp_path: Path) -> None:
    other = make_pki(tmp_path / "other")
    with pytest.raises(UplinkError) as err:
        await aws_client(ca_file=other.ca_file, connect_timeout_s=1.0).retrieve_configuration(ID)
    assert err.value.kind is ErrorKind.UNAVAILABLE
    assert "TLS to 127.0.0.1" in err.value.message and "CERTIFICATE_VERIFY_FAILED" in str(err.value)
