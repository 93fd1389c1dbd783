"""Logging: logfmt lines, journald field mapping, and redaction of anything secret."""

from __future__ import annotations

import io
import logging

import pytest

from edge_recorder.support.logs import (
    REDACTED,
    RedactionFilter,
    get_logger,
    journal_fields,
    redact_text,
    setup_logging,
)

JWT = (
    "eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9."
    "eyJzdWIiOiJkZXZpY2UiLCJleHAiOjE4MDAwMDAwMDB9."
    "c2lnbmF0dXJlLWJ5dGVzLXRoYXQtbG9vay1yZWFs"
)


@pytest.fixture
def captured() -> io.StringIO:
    stream = io.StringIO()
    setup_logging("DEBUG", "logfmt", stream=stream, environ={})
    return stream


def test_one_line_per_event_with_fields(captured: io.StringIO) -> None:
    get_logger("edge_recorder.spool").info("recording closed", recording=2, audio_bytes=3840)
    (line,) = captured.getvalue().splitlines()
    assert "level=info" in line and "logger=spool" in line
    assert 'msg="recording closed"' in line
    assert line.endswith("recording=2 audio_bytes=3840")


def test_values_with_spaces_are_quoted(captured: io.StringIO) -> None:
    get_logger("edge_recorder.x").warning("odd", reason='say "hi"\nthere')
    assert 'reason="say \\"hi\\"\\nthere"' in captured.getvalue()


def test_tokens_never_reach_the_log(captured: io.StringIO) -> None:
    log = get_logger("edge_recorder.uplinks")
    log.info("token refreshed", token=JWT, access_token=JWT, client_secret="s3cr3t")
    log.info("sending header Authorization: Bearer %s", JWT)
    log.info("url https://user:pa55word@host/x and client_secret=s3cr3t&x=1")
    try:
        raise RuntimeError(f"server said 401 for Bearer {JWT}")
    except RuntimeError:
        log.exception("request failed", authorization=f"Bearer {JWT}")
    out = captured.getvalue()
    for secret in (JWT, "s3cr3t", "pa55word", JWT.split(".")[1]):
        assert secret not in out
    assert out.count(REDACTED) >= 6
    assert "request failed" in out and "RuntimeError" in out


def test_audio_and_patient_context_never_reach_the_log(captured: io.StringIO) -> None:
    log = get_logger("edge_recorder.delivery.engine")
    pcm = bytes(range(256)) * 4
    log.info("chunk", audio=pcm, data=b"\x01\x02", patient="Jane Doe", context={"mrn": "123"})
    log.info("sizes", audio_bytes=1024, chunk=pcm)
    out = captured.getvalue()
    assert "Jane Doe" not in out and "123" not in out.split("sizes")[0].split("chunk", 1)[1]
    assert "<1024 bytes>" in out and "audio_bytes=1024" in out
    assert "\\x01" not in out


def test_metadata_about_secrets_is_kept() -> None:
    record = logging.makeLogRecord({"msg": "key loaded"})
    record.fields = {"key_file": "/var/lib/edge-recorder/spool.key", "key": "abc"}
    RedactionFilter().filter(record)
    assert record.fields == {"key_file": "/var/lib/edge-recorder/spool.key", "key": REDACTED}


def test_redact_text_leaves_ordinary_text_alone() -> None:
    assert redact_text("recording 3 closed after 12.5 s") == "recording 3 closed after 12.5 s"


def test_journal_fields_are_upper_case_and_prioritised() -> None:
    record = logging.makeLogRecord({"msg": "mic lost", "levelno": logging.WARNING, "name": "x"})
    record.fields = {"device": "plughw:CARD=Array", "outage-s": 2.5}
    fields = journal_fields(record)
    assert fields["MESSAGE"] == "mic lost"
    assert fields["PRIORITY"] == "4"
    assert fields["ER_DEVICE"] == "plughw:CARD=Array"
    assert fields["ER_OUTAGE_S"] == "2.5"


def test_journal_handler_is_used_under_systemd() -> None:
    handler = setup_logging("INFO", "auto", environ={"JOURNAL_STREAM": "8:1234"})
    assert type(handler).__name__ == "JournalHandler"
    plain = setup_logging("INFO", "auto", environ={})
    assert isinstance(plain, logging.StreamHandler)
