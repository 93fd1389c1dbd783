"""Server-side SigV4 checks: the request signature (botocore, independent of the awscrt signer
the device uses) and the chained event signatures."""

from __future__ import annotations

import datetime as dt
import hmac
import re

from botocore.auth import SigV4Auth  # type: ignore[import-untyped]
from botocore.awsrequest import AWSRequest  # type: ignore[import-untyped]
from botocore.credentials import Credentials as BotoCredentials  # type: ignore[import-untyped]

from edge_recorder.uplinks.aws.signing import STREAMING_BODY, Credentials, event_signature

_AUTH_RE = re.compile(
    r"AWS4-HMAC-SHA256 Credential=(?P<key>[^/]+)/(?P<day>\d{8})/(?P<region>[^/]+)/"
    r"(?P<service>[^/]+)/aws4_request, ?SignedHeaders=(?P<signed>[^,]+), ?"
    r"Signature=(?P<sig>[0-9a-f]{64})"
)
MAX_SKEW_S = 300
HOST_NAMES = {"host", ":authority"}


class SignatureError(Exception):
    """The request or an event is not signed with the configured test credentials."""

    def __init__(self, exception_type: str, message: str) -> None:
        super().__init__(message)
        self.exception_type = exception_type


def verify_request(
    method: str,
    authority: str,
    path: str,
    headers: dict[str, str],
    creds: Credentials,
    service: str,
    now: dt.datetime,
) -> tuple[str, str]:
    """Check the Authorization header; returns (region, seed signature hex) for the events."""
    found = _AUTH_RE.fullmatch(headers.get("authorization", ""))
    if found is None:
        raise SignatureError("AccessDeniedException", "missing or malformed Authorization")
    if found["key"] != creds.access_key_id:
        raise SignatureError("UnrecognizedClientException", "unknown access key id")
    if found["service"] != service:
        raise SignatureError("InvalidSignatureException", f"credential scope is not {service}")
    if headers.get("x-amz-content-sha256") != STREAMING_BODY:
        raise SignatureError(
            "InvalidSignatureException", f"x-amz-content-sha256 must be {STREAMING_BODY}"
        )
    stamp = headers.get("x-amz-date", "")
    try:
        when = dt.datetime.strptime(stamp, "%Y%m%dT%H%M%SZ").replace(tzinfo=dt.UTC)
    except ValueError:
        raise SignatureError("InvalidSignatureException", "bad x-amz-date") from None
    if abs((now - when).total_seconds()) > MAX_SKEW_S or found["day"] != stamp[:8]:
        raise SignatureError("InvalidSignatureException", "signature expired or clock skew")
    names = found["signed"].split(";")
    # Over HTTP/2 the host is the `:authority` pseudo-header, and AWS's JavaScript SDK signs it
    # under that name; awscrt and botocore sign `host`. Either carries the authority.
    if not HOST_NAMES & set(names) or "x-amz-date" not in names:
        raise SignatureError(
            "InvalidSignatureException", "host (or :authority) and x-amz-date must be signed"
        )
    signed = {name: (authority if name in HOST_NAMES else headers.get(name, "")) for name in names}
    request = AWSRequest(method=method, url=f"https://{authority}{path}", headers=signed)
    request.context["timestamp"] = stamp
    auth = _AsSigned(
        BotoCredentials(creds.access_key_id, creds.secret_access_key), service, found["region"]
    )
    auth.names = set(names)
    if auth.signed_headers(auth.headers_to_sign(request)) != found["signed"]:
        raise SignatureError("InvalidSignatureException", "signed header list mismatch")
    expected = auth.signature(
        auth.string_to_sign(request, auth.canonical_request(request)), request
    )
    if not hmac.compare_digest(expected, found["sig"]):
        raise SignatureError(
            "InvalidSignatureException",
            "The request signature we calculated does not match the signature you provided",
        )
    return found["region"], found["sig"]


class _AsSigned(SigV4Auth):  # type: ignore[misc]
    """botocore's SigV4 over exactly the client's signed headers: botocore adds `host` when
    the request has none, which a client that signed `:authority` instead did not sign."""

    names: set[str] = set()

    def headers_to_sign(self, request: AWSRequest) -> object:
        headers = super().headers_to_sign(request)
        if "host" not in self.names and "host" in headers:
            del headers["host"]
        return headers


class EventChain:
    """Verifies each envelope's `:chunk-signature` against the previous signature."""

    def __init__(self, creds: Credentials, region: str, service: str, seed_hex: str) -> None:
        self._creds, self._region, self._service = creds, region, service
        self.prior_hex = seed_hex

    def check(self, headers: dict[str, object], payload: bytes, now: dt.datetime) -> None:
        millis, sig = headers.get(":date"), headers.get(":chunk-signature")
        if not isinstance(millis, int) or not isinstance(sig, bytes):
            raise SignatureError("BadRequestException", "event without :date / :chunk-signature")
        when = dt.datetime.fromtimestamp(millis / 1000, dt.UTC)
        if abs((now - when).total_seconds()) > MAX_SKEW_S:
            raise SignatureError("InvalidSignatureException", "event :date out of range")
        expected = event_signature(
            self._creds, when, self._region, self._service, self.prior_hex, payload
        )
        if not hmac.compare_digest(expected, sig.hex()):
            raise SignatureError("InvalidSignatureException", "event signature does not match")
        self.prior_hex = expected
