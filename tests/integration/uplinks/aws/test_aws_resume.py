"""After a break the recording continues in the SAME session from the transcript watermark
(within the resume window), else restarts from byte 0 in a new session; the streams the
emulator stored tile the recording: no gap, overlap reported."""

from __future__ import annotations

import asyncio

import pytest

from edge_recorder.uplinks.aws.stream import AwsStream
from edge_recorder.uplinks.aws.watermark import coverage
from edge_recorder.uplinks.base import (
    DataFormat,
    ErrorKind,
    RecordingRef,
    SessionIdentity,
    UplinkError,
)
from tests.support.aws_emulator import AwsEmulatorHandle, ClientFactory, MemoryState

ID = SessionIdentity.local("enc-resume")
AUDIO = bytes((i * 7) % 251 for i in range(16000 * 2 * 6))  # 6 s, no repeating 256-byte period
REC = RecordingRef.new(1)


async def _broken_stream(stream: AwsStream, data: bytes) -> int:
    """Send until the connection drops; returns the confirmed watermark."""
    acks: list[int] = []

    async def pump() -> None:
        async for ack in stream.acks():
            acks.append(ack.stored)

    reader = asyncio.create_task(pump())
    with pytest.raises(UplinkError) as err:
        await stream.send(0, data)
        await reader
    assert err.value.kind is ErrorKind.UNAVAILABLE
    reader.cancel()
    await asyncio.gather(reader, return_exceptions=True)
    await stream.abort()
    return stream.confirmed


async def test_resume_same_session_from_the_watermark_tiles_the_recording(
    aws_client: ClientFactory, aws_emulator: AwsEmulatorHandle
) -> None:
    state = MemoryState()
    client = aws_client(state=state)
    await aws_emulator.fault(kind="drop", after_bytes=90000)
    first = await client.open_recording(ID, REC, DataFormat())
    watermark = await _broken_stream(first, AUDIO)
    (session,) = await aws_emulator.sessions()
    received = session["streams"][0]["bytes"]
    assert 0 < watermark <= received  # never confirms what the service did not get

    second = await client.open_recording(ID, REC, DataFormat(), starting_offset=watermark)
    assert second.resume_offset == watermark and second.plan.resumed
    assert second.plan.session_id == first.plan.session_id
    await second.send(watermark, AUDIO[watermark:])
    assert await second.close() == len(AUDIO)

    (session,) = await aws_emulator.sessions()
    sid = session["session_id"]
    assert [s["resumed"] for s in session["streams"]] == [False, True]
    stream0 = await aws_emulator.stream_bytes(sid, 0)
    stream1 = await aws_emulator.stream_bytes(sid, 1)
    assert stream0 == AUDIO[: len(stream0)] and stream1 == AUDIO[watermark:]
    gaps, overlap = coverage([(0, len(stream0)), (watermark, len(AUDIO))], len(AUDIO))
    assert gaps == [] and overlap == len(stream0) - watermark


async def test_resume_window_passed_restarts_in_a_new_session(
    aws_client: ClientFactory, aws_emulator: AwsEmulatorHandle
) -> None:
    now = [1000.0]
    client = aws_client(state=MemoryState(), clock=lambda: now[0], resume_window_s=60)
    first = await client.open_recording(ID, REC, DataFormat())
    await first.send(0, AUDIO[:64000])
    await first.wait_confirmed(64000, 5)
    await first.abort()
    now[0] += 61
    with pytest.raises(UplinkError) as err:
        await client.open_recording(ID, REC, DataFormat(), starting_offset=64000)
    assert err.value.kind is ErrorKind.NOT_FOUND and not err.value.retryable
    again = await client.open_recording(ID, REC, DataFormat(), starting_offset=0)
    assert again.plan.session_id != first.plan.session_id and not again.plan.resumed
    await again.abort()


async def test_service_refusing_the_resume_means_a_new_session(
    aws_client: ClientFactory, aws_emulator: AwsEmulatorHandle
) -> None:
    client = aws_client(service="aws-connect-health", state=MemoryState())
    first = await client.open_recording(ID, REC, DataFormat())
    await first.send(0, AUDIO[:64000])
    await first.wait_confirmed(64000, 5)
    await first.abort()
    await aws_emulator.fault(kind="refuse_resume")
    with pytest.raises(UplinkError) as err:
        await client.open_recording(ID, REC, DataFormat(), starting_offset=64000)
    assert err.value.kind is ErrorKind.NOT_FOUND and "refused to resume" in err.value.message


async def test_a_completed_session_cannot_be_resumed(
    aws_client: ClientFactory, aws_emulator: AwsEmulatorHandle
) -> None:
    client = aws_client(state=MemoryState())
    first = await client.open_recording(ID, REC, DataFormat())
    await first.send(0, AUDIO[:32000])
    await first.close()
    with pytest.raises(UplinkError) as err:
        await client.open_recording(ID, REC, DataFormat(), starting_offset=32000)
    assert err.value.kind is ErrorKind.NOT_FOUND  # ConflictException on resume → new session
