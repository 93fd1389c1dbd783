"""Chained event signatures (pinned to awslabs' signer) and the awscrt request signature
checked by the emulator's botocore-based verifier."""

from __future__ import annotations

import datetime as dt

import pytest

from devtools.emulators.aws.verify import EventChain, SignatureError, verify_request
from edge_recorder.uplinks.aws.eventstream import Decoder
from edge_recorder.uplinks.aws.signing import (
    Credentials,
    EventSigner,
    event_signature,
    request_signature,
    sign_request,
)

CREDS = Credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")
WHEN = dt.datetime(2026, 11, 21, 3, 0, 0, tzinfo=dt.UTC)
# amazon-transcribe 0.6.4 EventSigner("transcribe", "us-east-1") at WHEN, prior = 0xab * 32
AWSLABS_FIRST = "d850dfb612dbf9004d17b40faa5b4729180f50293acfda058113b1ca39f0a945"
AWSLABS_EMPTY = "747cf61b63217d84f21d849f13ef5b4763624d53189d502ad3b506dcf232a02a"


def test_event_signatures_match_the_awslabs_vector() -> None:
    first = event_signature(CREDS, WHEN, "us-east-1", "transcribe", "ab" * 32, b"hello event")
    assert first == AWSLABS_FIRST
    assert event_signature(CREDS, WHEN, "us-east-1", "transcribe", first, b"") == AWSLABS_EMPTY


def test_envelopes_chain_and_verify() -> None:
    signer = EventSigner(CREDS, "us-east-1", "transcribe", "ab" * 32)
    chain = EventChain(CREDS, "us-east-1", "transcribe", "ab" * 32)
    for payload in (b"one", b"two", b""):
        (msg,) = Decoder().feed(signer.envelope(payload, WHEN))
        assert msg.payload == payload
        chain.check(msg.headers, msg.payload, WHEN)
    (replayed,) = Decoder().feed(
        EventSigner(CREDS, "us-east-1", "transcribe", "ab" * 32).envelope(b"one", WHEN)
    )
    with pytest.raises(SignatureError, match="does not match"):
        chain.check(replayed.headers, replayed.payload, WHEN)


async def test_awscrt_request_signature_verifies_with_botocore() -> None:
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    headers = [
        ("host", "127.0.0.1:8443"),
        ("content-type", "application/vnd.amazon.eventstream"),
        ("x-amzn-transcribe-session-id", "0f8fad5b-d9cb-469f-a165-70867728950e"),
    ]
    signed = await sign_request(
        "POST", "/medical-scribe-stream", headers, CREDS, "eu-west-2", "transcribe", now
    )
    as_dict = {k.lower(): v for k, v in signed}
    assert as_dict["x-amz-content-sha256"] == "STREAMING-AWS4-HMAC-SHA256-EVENTS"
    region, seed = verify_request(
        "POST", "127.0.0.1:8443", "/medical-scribe-stream", as_dict, CREDS, "transcribe", now
    )
    assert region == "eu-west-2" and seed == request_signature(signed)
    tampered = dict(as_dict, **{"x-amzn-transcribe-session-id": "1" * 36})
    with pytest.raises(SignatureError, match="does not match"):
        verify_request(
            "POST", "127.0.0.1:8443", "/medical-scribe-stream", tampered, CREDS, "transcribe", now
        )
    with pytest.raises(SignatureError, match="credential scope"):
        verify_request(
            "POST", "127.0.0.1:8443", "/medical-scribe-stream", as_dict, CREDS, "health-agent", now
        )
    with pytest.raises(SignatureError, match="expired"):
        verify_request(
            "POST",
            "127.0.0.1:8443",
            "/medical-scribe-stream",
            as_dict,
            CREDS,
            "transcribe",
            now + dt.timedelta(minutes=10),
        )


def test_credentials_repr_hides_secrets() -> None:
    text = repr(Credentials("AKID", "very-secret", "token-x"))
    assert "very-secret" not in text and "token-x" not in text
