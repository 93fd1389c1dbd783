"""SigV4 for the streaming request (awscrt) and the chained per-event signatures (here).

The HTTP/2 request is signed by awscrt (the AWS C signer) with the body value
`STREAMING-AWS4-HMAC-SHA256-EVENTS`. awscrt's Python API does not expose event signing, so
each event's envelope is signed by the small `EventSigner` below: string to sign =
`AWS4-HMAC-SHA256-PAYLOAD`, timestamp, scope, previous signature (hex), sha256 of the encoded
`:date` header, sha256 of the event bytes; the first "previous signature" is the request's.
Its output is pinned in tests to a vector from awslabs' amazon-transcribe signer.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
from collections.abc import Sequence
from dataclasses import dataclass, field

from awscrt import auth as crt_auth  # type: ignore[import-untyped]
from awscrt import http as crt_http

from edge_recorder.uplinks.aws.eventstream import (
    HeaderValue,
    Timestamp,
    encode_headers,
    encode_message,
)
from edge_recorder.uplinks.aws.transport import await_crt

STREAMING_BODY = "STREAMING-AWS4-HMAC-SHA256-EVENTS"


@dataclass(frozen=True)
class Credentials:
    """Resolved AWS credentials; repr() hides the secret and the session token."""

    access_key_id: str
    secret_access_key: str = field(repr=False)
    session_token: str | None = field(default=None, repr=False)


def amz_date(when: dt.datetime) -> str:
    return when.strftime("%Y%m%dT%H%M%SZ")


def signing_key(secret: str, day: str, region: str, service: str) -> bytes:
    key = ("AWS4" + secret).encode()
    for part in (day, region, service, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return key


async def sign_request(
    method: str,
    path: str,
    headers: Sequence[tuple[str, str]],
    creds: Credentials,
    region: str,
    service: str,
    when: dt.datetime,
) -> list[tuple[str, str]]:
    """The request's headers plus x-amz-date, x-amz-content-sha256, Authorization (awscrt)."""
    request = crt_http.HttpRequest(method, path, crt_http.HttpHeaders(list(headers)))
    config = crt_auth.AwsSigningConfig(
        algorithm=crt_auth.AwsSigningAlgorithm.V4,
        signature_type=crt_auth.AwsSignatureType.HTTP_REQUEST_HEADERS,
        credentials_provider=crt_auth.AwsCredentialsProvider.new_static(
            creds.access_key_id, creds.secret_access_key, creds.session_token
        ),
        region=region,
        service=service,
        date=when,
        signed_body_value=STREAMING_BODY,
        signed_body_header_type=crt_auth.AwsSignedBodyHeaderType.X_AMZ_CONTENT_SHA_256,
    )
    signed = await await_crt(crt_auth.aws_sign_request(request, config))
    return [(str(k), str(v)) for k, v in signed.headers]


def request_signature(headers: Sequence[tuple[str, str]]) -> str:
    """The hex signature in the Authorization header (the seed of the event chain)."""
    for name, value in headers:
        if name.lower() == "authorization" and "Signature=" in value:
            return value.rsplit("Signature=", 1)[1].strip()
    raise ValueError("signed request has no Authorization signature")


def event_string_to_sign(
    when: dt.datetime, region: str, service: str, prior_hex: str, payload: bytes
) -> str:
    stamp = amz_date(when)
    date_header = encode_headers({":date": Timestamp(int(when.timestamp() * 1000))})
    return "\n".join(
        (
            "AWS4-HMAC-SHA256-PAYLOAD",
            stamp,
            f"{stamp[:8]}/{region}/{service}/aws4_request",
            prior_hex,
            hashlib.sha256(date_header).hexdigest(),
            hashlib.sha256(payload).hexdigest(),
        )
    )


def event_signature(
    creds: Credentials,
    when: dt.datetime,
    region: str,
    service: str,
    prior_hex: str,
    payload: bytes,
) -> str:
    key = signing_key(creds.secret_access_key, amz_date(when)[:8], region, service)
    text = event_string_to_sign(when, region, service, prior_hex, payload)
    return hmac.new(key, text.encode(), hashlib.sha256).hexdigest()


class EventSigner:
    """Wraps each event in a signed envelope, chaining from the previous signature."""

    def __init__(self, creds: Credentials, region: str, service: str, seed_hex: str) -> None:
        self._creds, self._region, self._service = creds, region, service
        self.prior_hex = seed_hex

    def envelope(self, payload: bytes, when: dt.datetime | None = None) -> bytes:
        """`payload` (an encoded event, or b"" for the final frame) signed and framed."""
        now = (when or dt.datetime.now(dt.UTC)).replace(microsecond=0)
        sig = event_signature(
            self._creds, now, self._region, self._service, self.prior_hex, payload
        )
        self.prior_hex = sig
        headers: dict[str, HeaderValue] = {
            ":date": Timestamp(int(now.timestamp() * 1000)),
            ":chunk-signature": bytes.fromhex(sig),
        }
        return encode_message(headers, payload)
