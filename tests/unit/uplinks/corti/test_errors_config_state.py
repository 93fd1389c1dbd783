"""RFC 9457 messages and kinds, the [corti] section, and the state keys (pure)."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from edge_recorder.config.model import Config
from edge_recorder.config.services.corti import CortiConfig
from edge_recorder.uplinks.base import ErrorKind
from edge_recorder.uplinks.corti.errors import error_for_response, problem_message
from edge_recorder.uplinks.corti.parts import UploadPlan
from edge_recorder.uplinks.corti.state import Encounter


def test_problem_message_keeps_detail_validation_errors_and_requestid() -> None:
    body = {
        "requestid": "r-1",
        "status": 400,
        "type": "https://api.corti.app/errors/bad-request",
        "detail": "invalid transcript request",
        "validationErrors": [{"key": "recordingId", "message": "unknown"}],
    }
    text = problem_message(400, json.dumps(body))
    assert text == "invalid transcript request; recordingId: unknown (requestid r-1)"
    assert problem_message(502, "<html>Bad   Gateway</html>") == "<html>Bad Gateway</html>"
    assert problem_message(500, "") == "HTTP 500"


@pytest.mark.parametrize(
    ("status", "kind"),
    [(400, ErrorKind.INVALID), (401, ErrorKind.AUTH), (403, ErrorKind.FORBIDDEN),
     (404, ErrorKind.NOT_FOUND), (413, ErrorKind.INVALID), (429, ErrorKind.THROTTLED),
     (500, ErrorKind.SERVER), (504, ErrorKind.UNAVAILABLE)],
)  # fmt: skip
def test_statuses_map_to_kinds(status: int, kind: ErrorKind) -> None:
    err = error_for_response(status, '{"detail": "x"}', {"Retry-After": "7"})
    assert err.kind is kind and err.status == status and err.retry_after_s == 7.0


def test_region_gives_default_hosts() -> None:
    us = CortiConfig(region="us", tenant="base")
    assert us.api_base == "https://api.us.corti.app/v2"
    assert us.ws_base == "wss://api.us.corti.app/audio-bridge/v2"
    assert us.token_url == "https://auth.us.corti.app/realms/base/protocol/openid-connect/token"
    local = CortiConfig(
        tenant="t", api_url="http://127.0.0.1:9/v2/", auth_url="http://[::1]:9/realms"
    )
    assert local.api_base == "http://127.0.0.1:9/v2"
    assert local.token_url == "http://[::1]:9/realms/t/protocol/openid-connect/token"


def test_plain_text_urls_are_refused_outside_loopback() -> None:
    with pytest.raises(ValidationError, match=r"corti.api_url must use TLS"):
        CortiConfig(api_url="http://corti.example/v2")
    with pytest.raises(ValidationError, match=r"corti.ws_url must use TLS"):
        CortiConfig(ws_url="ws://10.0.0.2/audio-bridge/v2")


def test_documents_need_transcripts_and_limits_are_bounded() -> None:
    with pytest.raises(ValidationError, match=r"template_keys need corti.transcribe"):
        CortiConfig(template_keys=["corti-soap"], transcribe=False)
    with pytest.raises(ValidationError):
        CortiConfig(upload_max_bytes=200_000_000)  # above the service's 150 MB
    with pytest.raises(ValidationError):
        CortiConfig(encounter_type="visit")
    assert (
        Config.model_validate({"corti": {"upload_max_bytes": "10MB"}}).corti.upload_max_bytes
        == 10**7
    )


class DictState:
    def __init__(self) -> None:
        self.data: dict[str, str] = {}

    def get(self, key: str) -> str | None:
        return self.data.get(key)

    def put(self, key: str, value: str) -> None:
        self.data[key] = value

    def drop(self, prefix: str) -> None:
        self.data = {k: v for k, v in self.data.items() if not k.startswith(prefix)}


def test_state_keys_are_prefixed_and_tombstones_read_as_absent() -> None:
    state = DictState()
    enc = Encounter(state, "e1")
    enc.set_interaction("i-1")
    enc.set_plan(2, UploadPlan(100, 40))
    enc.set_plan(1, UploadPlan(10, 40))
    for n in range(1, 12):
        enc.set_part(1, n, f"r{n}")
    enc.lose_part(1, 1)
    assert enc.part(1, 1) is None and enc.part(1, 10) == "r10" and enc.part(1, 11) == "r11"
    assert enc.sequences == [1, 2] and enc.plan(2) == UploadPlan(100, 40)
    assert all(k.startswith("corti:e1:") for k in state.data)
    other = Encounter(state, "e10")
    other.set_interaction("i-2")
    enc.forget()
    assert state.data == {"corti:e10:interaction": "i-2"}
