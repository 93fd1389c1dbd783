"""Dice STREAM message building and parsing (pure)."""

from __future__ import annotations

import base64
import json

import pytest

from edge_recorder.config.services.dice import DiceConfig
from edge_recorder.uplinks.dice import messages as m
from edge_recorder.uplinks.dice.client import add_to_summary


def test_stream_request_carries_the_configured_settings_and_one_track() -> None:
    config = DiceConfig(
        note_template="consult", language="fr-CA", style="bullet", speaker="patient",
        transcribe_gen_mode="best", note_gen_mode="medium",
    )  # fmt: skip
    body = json.loads(m.stream_request(config, "track-1", 16000))
    assert body == {
        "object": "stream_request",
        "output_objects": ["transcript", "note"],
        "streams": [{"id": "track-1", "speaker": "patient"}],
        "sample_rate": 16000,
        "language": "fr-CA",
        "note_template": "consult",
        "style": "bullet",
        "transcribe_gen_mode": "best",
        "note_gen_mode": "medium",
    }
    single = json.loads(m.stream_request(DiceConfig(output_objects=["note"]), "t", 8000))
    assert single["output_objects"] == "note" and single["sample_rate"] == 8000


def test_audio_chunk_is_base64_of_the_exact_bytes_and_stop_is_documented() -> None:
    pcm = bytes(range(256)) * 3
    body = json.loads(m.audio_chunk("t", pcm))
    assert body["object"] == "audio_chunk" and body["stream_id"] == "t"
    assert base64.b64decode(body["payload"], validate=True) == pcm
    assert json.loads(m.STOP) == {"object": "stop"}


@pytest.mark.parametrize(
    ("rate", "ms", "expected"),
    [(16000, 250, 8000), (16000, 1000, 32000), (16000, 5000, 32000), (44100, 333, 29370)],
)
def test_chunks_are_whole_samples_and_never_over_one_second(
    rate: int, ms: int, expected: int
) -> None:
    size = m.chunk_bytes(rate, ms)
    assert size == expected and size % 2 == 0 and size <= rate * 2


def test_split_audio_keeps_every_byte_in_order() -> None:
    data = bytes(range(200)) * 101
    pieces = list(m.split_audio(data, 6000))
    assert b"".join(pieces) == data and all(len(p) <= 6000 for p in pieces)


def test_ack_pings_round_trip_and_foreign_pongs_are_ignored() -> None:
    assert m.acked_offset(m.ack_ping(123456)) == 123456
    assert m.acked_offset(m.ack_ping(0)) == 0
    for junk in (b"", b"ack:", b"ack:-1", b"ack:1x", b"hello", b"ack:" + b"9" * 30):
        assert m.acked_offset(junk) is None
    assert len(m.ack_ping(2**62)) <= 125  # a control frame payload limit (RFC 6455)


def test_server_messages_parse_into_their_kinds() -> None:
    item = m.parse_server_message(
        '{"object":"transcript_item","id":"a","text":"hi","speaker":"provider",'
        '"start_offset_ms":0,"end_offset_ms":900,"is_final":false}'
    )
    assert isinstance(item, m.TranscriptItem) and item.end_offset_ms == 900
    assert "hi" not in repr(item)  # PHI stays out of reprs
    note = m.parse_server_message(
        '{"object":"transcript_item","id":"n","is_final":true,"sections":'
        '[{"sec_title":"SOAP_PLAN","sec_heading":"Plan","sec_text":"rest"}]}'
    )
    assert isinstance(note, m.Note) and note.titles == ("SOAP_PLAN",)
    assert m.parse_server_message('{"object":"duration_limit","remaining_sec":42}') == (
        m.DurationLimit(42.0)
    )
    assert m.parse_server_message('{"object":"error_msg","message":"bad"}') == m.ErrorMsg("bad")
    assert m.parse_server_message('{"object":"something_new"}') is None


@pytest.mark.parametrize(
    "text",
    [
        "not json",
        "[1]",
        '{"object":"transcript_item","id":"a","is_final":"yes"}',
        '{"object":"transcript_item","id":7}',
        '{"object":"duration_limit","remaining_sec":"soon"}',
        '{"object":"transcript_item","sections":"x"}',
    ],
)
def test_unreadable_server_messages_raise_message_error(text: str) -> None:
    with pytest.raises(m.MessageError):
        m.parse_server_message(text)


def test_transcript_items_update_by_id_until_final() -> None:
    t = m.Transcript()

    def item(i: str, text: str, final: bool) -> m.TranscriptItem:
        return m.TranscriptItem(i, text, None, None, None, final)

    t.update(item("a", "he", False))
    t.update(item("a", "hello", True))
    t.update(item("a", "changed", False))  # a final item is not changed again
    t.update(item("b", "wor", False))
    assert t.count == 2 and t.final_count == 1
    assert [i["text"] for i in t.as_json()] == ["hello", "wor"]


def test_references_are_counts_and_known_titles_only() -> None:
    refs = m.summary_references(37, ["SOAP_SUBJECTIVE", "free text!", "SOAP_PLAN"], 2)
    assert refs == (
        ("streams", "2"),
        ("transcript_items", "37"),
        ("note_sections", "SOAP_SUBJECTIVE,SOAP_PLAN"),
    )
    assert m.summary_references(0, [], 0) == (("streams", "0"), ("transcript_items", "0"))


def test_the_encounter_summary_accumulates_streams() -> None:
    raw = add_to_summary(None, 1, 1000, 3, ["SOAP_PLAN"])
    raw = add_to_summary(raw, 1, 4000, 2, ["SOAP_PLAN", "SOAP_OBJECTIVE"])
    raw = add_to_summary(raw, 2, 500, 0, [])
    summary = json.loads(raw)
    assert summary == {
        "streams": 3,
        "items": 5,
        "titles": ["SOAP_PLAN", "SOAP_OBJECTIVE"],
        "bytes": {"1": 4000, "2": 500},
    }
