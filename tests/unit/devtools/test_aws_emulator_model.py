"""The Connect Health emulator judges requests and events by AWS's published model: what the
SDKs send is accepted (a bare `?` query, `multi`, the JSON or the binary audio event), what the
model forbids is refused. Requests and events are signed for real (the device's signer)."""

from __future__ import annotations

import base64
import datetime as dt
import json
import uuid
from pathlib import Path

import pytest

from devtools.emulators.aws.faults import AwsFaults
from devtools.emulators.aws.handler import Output, Rejected, StreamHandler
from devtools.emulators.aws.sessions import SessionStore
from edge_recorder.config.services.aws import AwsScribeConfig
from edge_recorder.uplinks.aws import eventstream as es
from edge_recorder.uplinks.aws import protocol as p
from edge_recorder.uplinks.aws.signing import (
    Credentials,
    EventSigner,
    request_signature,
    sign_request,
)

CREDS = Credentials("AKIDEMULATORTEST", "emulator-secret")
HOST = "streaming.health-agent.us-east-1.api.aws"
CFG = AwsScribeConfig(
    domain_id="dom-abcdefghij0123456",
    subscription_id="sub-ABCDEFGHIJ0123456789a",
    output_s3_uri="s3://notes-bkt/dev",
)
AUDIO = bytes(range(256)) * 25


@pytest.fixture
def handler(tmp_path: Path) -> StreamHandler:
    return StreamHandler(SessionStore(tmp_path), AwsFaults(), CREDS, 1.0, lambda sid: None)


async def start(
    handler: StreamHandler, path: str = "/medical-scribe-stream/", cfg: AwsScribeConfig = CFG
) -> EventSigner:
    headers = p.request_headers(p.CONNECT_HEALTH, cfg, HOST, str(uuid.uuid4()), 16000, "pcm")
    now = dt.datetime.now(dt.UTC)
    signed = await sign_request("POST", path, headers, CREDS, "us-east-1", "health-agent", now)
    handler.start("POST", HOST, path, {k.lower(): v for k, v in signed})
    return EventSigner(CREDS, "us-east-1", "health-agent", request_signature(signed))


def send(handler: StreamHandler, signer: EventSigner, etype: str, payload: bytes) -> Output:
    ctype = "application/octet-stream" if etype == "binaryAudioEvent" else "application/json"
    return handler.feed(signer.envelope(es.event(etype, payload, ctype)))


def configure(handler: StreamHandler, signer: EventSigner) -> None:
    out = send(handler, signer, "configurationEvent", p.configuration_event(p.CONNECT_HEALTH, CFG))
    assert out.frames == [] and not out.end


def exception_of(out: Output) -> tuple[str, dict[str, str]]:
    (frame,) = out.frames
    (msg,) = list(es.Decoder().feed(frame))
    return str(msg.headers[":exception-type"]), json.loads(msg.payload)


async def test_a_bare_query_and_multi_are_what_the_sdks_send(handler: StreamHandler) -> None:
    await start(
        handler, "/medical-scribe-stream/?", CFG.model_copy(update={"language_code": "multi"})
    )
    headers = dict(handler.response_headers)
    assert headers["x-amzn-medscribe-language-code"] == "multi"
    assert headers["x-amzn-medscribe-domain-id"] == CFG.domain_id
    assert headers["x-amzn-medscribe-subscription-id"] == CFG.subscription_id


async def test_an_unknown_language_is_a_validation_error(handler: StreamHandler) -> None:
    cfg = CFG.model_construct(**{**CFG.model_dump(), "language_code": "de-DE"})
    with pytest.raises(Rejected) as err:
        await start(handler, cfg=cfg)
    assert err.value.status == 400 and "en-US or multi" in str(err.value)


async def test_binary_and_json_audio_events_store_the_same_bytes(handler: StreamHandler) -> None:
    signer = await start(handler)
    configure(handler, signer)
    send(handler, signer, "binaryAudioEvent", AUDIO[:3200])
    chunk = base64.b64encode(AUDIO[3200:]).decode()
    send(handler, signer, "audioEvent", json.dumps({"audioChunk": chunk}).encode())
    assert handler.session is not None
    assert handler.session.audio_bytes == len(AUDIO)  # decoded, not the base64 text


async def test_raw_bytes_in_the_json_audio_event_are_refused(handler: StreamHandler) -> None:
    signer = await start(handler)
    configure(handler, signer)
    out = send(handler, signer, "audioEvent", AUDIO[:3200])
    etype, body = exception_of(out)
    assert etype == "validationException" and "audioEvent must be JSON" in body["message"]


async def test_a_configuration_event_without_post_stream_settings_is_refused(
    handler: StreamHandler,
) -> None:
    signer = await start(handler)
    out = send(handler, signer, "configurationEvent", b"{}")
    etype, body = exception_of(out)
    assert etype == "validationException"
    assert body == {"message": "configurationEvent.postStreamActionSettings: required"}


def _js_style_headers(path: str, secret: str) -> dict[str, str]:
    """A request signed the way AWS's JavaScript SDK signs over HTTP/2: `:authority`, no
    `host`; SigV4 computed here by hand from the specification (not by the emulator's code)."""
    import hashlib
    import hmac

    from edge_recorder.uplinks.aws.signing import STREAMING_BODY, signing_key

    now = dt.datetime.now(dt.UTC)
    stamp, day = now.strftime("%Y%m%dT%H%M%SZ"), now.strftime("%Y%m%d")
    fields = dict(p.request_headers(p.CONNECT_HEALTH, CFG, HOST, str(uuid.uuid4()), 16000, "pcm"))
    fields.pop("host")
    fields.update({":authority": HOST, "x-amz-date": stamp, "x-amz-content-sha256": STREAMING_BODY})
    names = sorted(fields)
    canonical = "\n".join(
        ["POST", path, "", *(f"{n}:{fields[n]}" for n in names), "", ";".join(names),
         STREAMING_BODY]
    )  # fmt: skip
    scope = f"{day}/us-east-1/health-agent/aws4_request"
    to_sign = "\n".join(
        ["AWS4-HMAC-SHA256", stamp, scope, hashlib.sha256(canonical.encode()).hexdigest()]
    )
    key = signing_key(secret, day, "us-east-1", "health-agent")
    sig = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    fields["authorization"] = (
        f"AWS4-HMAC-SHA256 Credential={CREDS.access_key_id}/{scope}, "
        f"SignedHeaders={';'.join(names)}, Signature={sig}"
    )
    return {k: v for k, v in fields.items() if not k.startswith(":")}


def test_a_signature_over_authority_is_accepted(handler: StreamHandler) -> None:
    path = "/medical-scribe-stream/"
    handler.start("POST", HOST, path, _js_style_headers(path, CREDS.secret_access_key))
    assert handler.session is not None
    with pytest.raises(Rejected) as err:
        handler.start("POST", HOST, path, _js_style_headers(path, "another-secret"))
    assert err.value.error_type == "InvalidSignatureException"
