"""Helpers for the emulator's own tests: raw gRPC stubs and aiohttp, never the device clients."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator

import aiohttp
import grpc
import pytest

from edge_recorder._proto.ambient.audio.v1 import audio_streaming_pb2 as pb
from edge_recorder._proto.ambient.audio.v1 import audio_streaming_pb2_grpc as pb_grpc
from tests.support.emulator import (
    CUSTOMER_ID,
    EXTERNAL_USER_ID,
    PARTNER_ID,
    PRODUCT_ID,
    EmulatorHandle,
)


@pytest.fixture
async def token(aas_emulator: EmulatorHandle) -> str:
    return await aas_emulator.fetch_token()


@pytest.fixture
async def stub(aas_emulator: EmulatorHandle) -> AsyncIterator[pb_grpc.AudioStreamingServiceStub]:
    async with grpc.aio.insecure_channel(aas_emulator.grpc_target) as channel:
        yield pb_grpc.AudioStreamingServiceStub(channel)


def grpc_metadata(token: str, user: bool = True) -> list[tuple[str, str]]:
    md = [("authorization", f"Bearer {token}"), ("x-ms-request-id", str(uuid.uuid4()))]
    if user:
        md.append(("external-user-id", EXTERNAL_USER_ID))
    return md


def session_data(correlation_id: str) -> pb.AmbientSessionData:
    return pb.AmbientSessionData(
        product_id=PRODUCT_ID,
        partner_id=PARTNER_ID,
        customer_id=CUSTOMER_ID,
        correlation_id=correlation_id,
        external_identifiers=[pb.ExternalIdentifier(type="userId", identifier=EXTERNAL_USER_ID)],
        locale_info=pb.LocaleInfo(recording_locales=["en-US"], encounter_report_locale="en-US"),
    )


def open_request(
    correlation_id: str, recording_id: str, starting_offset: int = 0, sequence: int = 0
) -> pb.RecordAmbientRequest:
    return pb.RecordAmbientRequest(
        recording_open=pb.RecordingOpenRequest(
            recording_id=recording_id,
            data_format=pb.DataFormat(
                pcm=pb.PcmFormat(sample_rate_hz=16000, bitcount=16, channels=1)
            ),
            ambient_session_data=session_data(correlation_id),
            actions=["generate-draft"],
            reason="ui",
            starting_offset=starting_offset,
            sequence_number=sequence,
        )
    )


def chunk_request(offset: int, data: bytes) -> pb.RecordAmbientRequest:
    return pb.RecordAmbientRequest(data_chunk=pb.DataChunkRequest(data_start=offset, data=data))


def close_request(recording_id: str, seconds: float = 1.0) -> pb.RecordAmbientRequest:
    return pb.RecordAmbientRequest(
        recording_close=pb.RecordingCloseRequest(
            recording_id=recording_id, recording_length_seconds=seconds, reason="ui"
        )
    )


# ------------------------------------------------------------------ REST helpers
AUDIO_QS = "?api-version=2025-07-15"


def rest_headers(token: str | None) -> dict[str, str]:
    headers = {"x-correlation-id": str(uuid.uuid4())}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    return headers


def chunk_metadata(correlation_id: str, recording_id: int, chunk_id: int, **extra: object) -> dict:
    return {
        "productId": PRODUCT_ID,
        "partnerId": PARTNER_ID,
        "customerId": CUSTOMER_ID,
        "correlationId": correlation_id,
        "recordingId": recording_id,
        "chunkId": chunk_id,
        "isLast": False,
        **extra,
    }


def chunk_form(metadata: dict, content: bytes | None) -> aiohttp.FormData:
    form = aiohttp.FormData()
    form.add_field("metadata", json.dumps(metadata), content_type="application/json")
    if content is not None:
        form.add_field(
            "content", content, filename="chunk.bin", content_type="application/octet-stream"
        )
    return form


def finalize_body(correlation_id: str, recording_id: int, total: int, **extra: object) -> dict:
    return {
        "productId": PRODUCT_ID,
        "partnerId": PARTNER_ID,
        "customerId": CUSTOMER_ID,
        "correlationId": correlation_id,
        "recordingId": recording_id,
        "totalChunks": total,
        **extra,
    }


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session
