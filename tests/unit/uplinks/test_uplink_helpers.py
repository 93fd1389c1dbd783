"""Pure helpers of the uplinks: chunk numbering, error mapping, token timing, live offsets."""

from __future__ import annotations

import json
import time
import uuid

import jwt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge_recorder.config.services.aas import AasConfig
from edge_recorder.uplinks.aas.chunks import chunk_id_for_offset, chunk_plan, total_chunks
from edge_recorder.uplinks.aas.grpc_errors import error_from_status
from edge_recorder.uplinks.aas.identity import aas_identity
from edge_recorder.uplinks.aas.rest import chunk_metadata, error_from_response
from edge_recorder.uplinks.auth import _lifetime, _refresh_at, is_rejected_token
from edge_recorder.uplinks.base import (
    Ack,
    ErrorKind,
    RecordingRef,
    SessionIdentity,
    UplinkError,
    kind_for_http_status,
)
from edge_recorder.uplinks.live import LiveRecordingState

SESSION = SessionIdentity(
    correlation_id="enc-1",
    customer_id=str(uuid.UUID(int=1)),
    partner_id=str(uuid.UUID(int=2)),
    product_id=str(uuid.UUID(int=3)),
    external_user_id="dr-who",
)


# ------------------------------------------------------------------ chunk ids


def test_chunk_ids_start_at_two_for_audio() -> None:
    assert chunk_id_for_offset(0, 65536) == 2
    assert chunk_id_for_offset(65535, 65536) == 2
    assert chunk_id_for_offset(65536, 65536) == 3
    assert total_chunks(0, 65536) == 1  # metadata-only chunk 1
    assert total_chunks(1, 65536) == 2
    assert total_chunks(65536, 65536) == 2
    assert total_chunks(65537, 65536) == 3


def test_chunk_plan_of_empty_recording_is_metadata_chunk_marked_last() -> None:
    [only] = chunk_plan(0, 1000)
    assert (only.chunk_id, only.size, only.is_last) == (1, 0, True)


@settings(max_examples=60, deadline=None)
@given(length=st.integers(0, 300_000), chunk=st.integers(256, 70_000))
def test_chunk_plan_covers_recording_exactly_once(length: int, chunk: int) -> None:
    plan = chunk_plan(length, chunk)
    assert [s.chunk_id for s in plan] == list(range(1, total_chunks(length, chunk) + 1))
    assert plan[0].size == 0
    assert [s.is_last for s in plan].count(True) == 1 and plan[-1].is_last
    covered = 0
    for span in plan[1:]:
        assert span.start == covered and 0 < span.size <= chunk
        assert chunk_id_for_offset(span.start, chunk) == span.chunk_id
        assert chunk_id_for_offset(span.end - 1, chunk) == span.chunk_id
        covered = span.end
    assert covered == length


def test_chunk_plan_is_deterministic_so_retries_resend_identical_chunks() -> None:
    assert chunk_plan(200_001, 65536) == chunk_plan(200_001, 65536)


def test_chunk_metadata_is_stable_and_complete() -> None:
    meta = chunk_metadata(SESSION, 2, 5, is_last=True)
    assert meta == {
        "productId": SESSION.product_id,
        "partnerId": SESSION.partner_id,
        "customerId": SESSION.customer_id,
        "correlationId": "enc-1",
        "recordingId": 2,
        "chunkId": 5,
        "isLast": True,
        "externalUserId": "dr-who",
    }


def test_bad_chunk_arguments_are_refused() -> None:
    with pytest.raises(ValueError):
        chunk_id_for_offset(-1, 10)
    with pytest.raises(ValueError):
        total_chunks(10, 0)


# ------------------------------------------------------------------ identity


def test_session_identity_from_config_needs_partner_ids() -> None:
    with pytest.raises(ValueError, match=r"aas.customer_id, aas.partner_id, aas.product_id"):
        aas_identity(AasConfig(), "enc-1")
    aas = AasConfig(
        customer_id=uuid.UUID(int=1),
        partner_id=uuid.UUID(int=2),
        product_id=uuid.UUID(int=3),
        external_user_id="cfg-user",
        locale="de-DE",
    )
    ident = aas_identity(aas, "enc-2", external_user_id="ehr-user")
    assert ident.external_user_id == "ehr-user"
    assert ident.locale == "de-DE" and ident.actions == ("generate-draft",)
    assert aas_identity(aas, "enc-3").external_user_id == "cfg-user"
    assert "ehr-user" not in repr(ident)  # practitioner ids never ride along in a repr


def test_recording_ref_validates_guid_and_sequence() -> None:
    assert RecordingRef.new(1).sequence == 1
    with pytest.raises(ValueError):
        RecordingRef(str(uuid.uuid4()), 0)
    with pytest.raises(ValueError):
        RecordingRef("not-a-guid", 1)


# ------------------------------------------------------------------ error mapping


@pytest.mark.parametrize(
    ("status", "kind", "retryable"),
    [
        (400, ErrorKind.INVALID, False),
        (401, ErrorKind.AUTH, False),
        (403, ErrorKind.FORBIDDEN, False),
        (404, ErrorKind.NOT_FOUND, False),
        (429, ErrorKind.THROTTLED, True),
        (500, ErrorKind.SERVER, True),
        (502, ErrorKind.UNAVAILABLE, True),
        (503, ErrorKind.UNAVAILABLE, True),
    ],
)
def test_http_status_mapping(status: int, kind: ErrorKind, retryable: bool) -> None:
    assert kind_for_http_status(status) is kind
    err = error_from_response(status, json.dumps({"error": "the server's words"}))
    assert (err.kind, err.retryable, err.status) == (kind, retryable, status)
    assert err.message == "the server's words"


def test_error_message_from_plain_text_and_retry_after() -> None:
    err = error_from_response(401, "Unauthorized\n", {"Retry-After": "3"})
    assert err.message == "Unauthorized" and err.retry_after_s == 3.0
    assert is_rejected_token(err)
    assert error_from_response(503, "").message == "HTTP 503"


def test_issuer_refusal_is_not_retried_with_a_new_token() -> None:
    err = UplinkError(ErrorKind.AUTH, "invalid_client", transport="auth", status=401)
    assert not is_rejected_token(err) and not err.retryable
    assert "invalid_client" in str(err)


@pytest.mark.parametrize(
    ("code", "kind", "retryable"),
    [
        ("UNAUTHENTICATED", ErrorKind.AUTH, False),
        ("PERMISSION_DENIED", ErrorKind.FORBIDDEN, False),
        ("NOT_FOUND", ErrorKind.NOT_FOUND, False),
        ("INVALID_ARGUMENT", ErrorKind.INVALID, False),
        ("FAILED_PRECONDITION", ErrorKind.CONFLICT, False),
        ("OUT_OF_RANGE", ErrorKind.CONFLICT, False),
        ("RESOURCE_EXHAUSTED", ErrorKind.THROTTLED, True),
        ("UNAVAILABLE", ErrorKind.UNAVAILABLE, True),
        ("DEADLINE_EXCEEDED", ErrorKind.UNAVAILABLE, True),
        ("INTERNAL", ErrorKind.SERVER, True),
        ("SOMETHING_NEW", ErrorKind.SERVER, True),
    ],
)
def test_grpc_status_mapping(code: str, kind: ErrorKind, retryable: bool) -> None:
    err = error_from_status(code, "details")
    assert (err.kind, err.retryable, err.transport) == (kind, retryable, "grpc")


# ------------------------------------------------------------------ token timing


def test_refresh_happens_margin_before_expiry_but_not_in_first_half() -> None:
    assert _refresh_at(100.0, 3600.0, 60.0) == 100.0 + 3540.0
    assert _refresh_at(100.0, 10.0, 60.0) == 105.0  # short tokens: refresh at half-life


def test_lifetime_from_expires_in_or_jwt_exp() -> None:
    assert _lifetime({"expires_in": 120}, "x") == 120.0
    assert _lifetime({"expires_in": "90"}, "x") == 90.0
    token = jwt.encode({"exp": int(time.time()) + 500}, "k" * 32, algorithm="HS256")
    assert 495 <= _lifetime({}, token) <= 500
    assert _lifetime({}, "opaque") == 300.0


# ------------------------------------------------------------------ live offsets


async def test_live_state_refuses_gaps_and_tracks_confirmation() -> None:
    state = LiveRecordingState("grpc", resume_offset=100, sequence=1)
    with pytest.raises(ValueError, match="expected 100"):
        state.check_send(0, 10)
    state.check_send(100, 50)
    with pytest.raises(ValueError, match="expected 150"):
        state.check_send(160, 10)
    await state.stored(150)
    assert await state.wait_confirmed(150, 1.0) == 150
    await state.stored(120)  # a stale ack never moves confirmation back
    assert state.confirmed == 150
    acks = state.acks()
    assert await anext(acks) == Ack(150)  # coalesced: the latest count, not each message
    await state.stored(170)
    await state.closed(180)
    assert await state.wait_final(1.0) == 180
    assert [a async for a in acks] == [Ack(180, final=True)]


async def test_live_state_acks_end_with_the_stream_error() -> None:
    state = LiveRecordingState("grpc", resume_offset=0, sequence=1)
    acks = state.acks()
    await state.stored(10)
    assert await anext(acks) == Ack(10)
    await state.failed(UplinkError(ErrorKind.SERVER, "boom", transport="grpc"))
    with pytest.raises(UplinkError, match="boom"):
        await anext(acks)


async def test_live_state_error_reaches_waiters_and_senders() -> None:
    state = LiveRecordingState("websocket", resume_offset=0, sequence=1)
    err = UplinkError(ErrorKind.UNAVAILABLE, "cut", transport="websocket")
    await state.failed(err)
    with pytest.raises(UplinkError) as info:
        await state.wait_confirmed(10, 1.0)
    assert info.value is err
    with pytest.raises(UplinkError):
        state.check_send(0, 10)


async def test_live_state_times_out_with_retryable_error() -> None:
    state = LiveRecordingState("grpc", resume_offset=0, sequence=1)
    with pytest.raises(UplinkError) as info:
        await state.wait_confirmed(10, 0.01)
    assert info.value.kind is ErrorKind.UNAVAILABLE and info.value.retryable
