"""`[dice]` validation, the factory's refusals, sealed notes, the emulator's pure rules."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from cryptography.exceptions import InvalidTag
from pydantic import ValidationError

from devtools.emulators.dice import protocol as p
from edge_recorder.config.model import Config
from edge_recorder.spool.identity import Identities
from edge_recorder.uplinks.dice.factory import dice_uplinks
from edge_recorder.uplinks.dice.notes import NoteWriter, read_note, seal, unseal


class NoState:
    def get(self, key: str) -> str | None:
        return None

    def put(self, key: str, value: str) -> None:
        raise AssertionError("no I/O at build time")

    def drop(self, prefix: str) -> None:
        return None


def config(tmp_path: Path, **dice: object) -> Config:
    fields: dict[str, object] = {
        "url": "wss://api.dice.health/v1/scribe/server",
        "token_url": "https://auth.example/token",
        "username": "svc",
    }
    fields.update(dice)
    return Config.model_validate(
        {"uplink": {"service": "dice"}, "dice": fields, "spool": {"dir": str(tmp_path)}}
    )


def test_defaults_and_documented_enums() -> None:
    dice = Config().dice
    assert dice.url == "wss://api.dice.health/v1/scribe/server"
    assert (dice.chunk_ms, dice.stream_limit_s, dice.limit_warning_s) == (250, 3600.0, 60.0)
    assert dice.output_objects == ["transcript", "note"]


@pytest.mark.parametrize(
    ("key", "value", "reason"),
    [
        ("url", "ws://dice.example/v1/scribe/server", "TLS"),
        ("url", "https://api.dice.health/v1/scribe/server", "ws:// or wss://"),
        ("token_url", "http://auth.example/token", "TLS"),
        ("refresh_url", "ftp://auth.example/refresh", "http"),
        ("chunk_ms", 1500, "less than or equal to 1000"),
        ("language", "de-DE", "en-US"),
        ("note_template", "soapy", "consult"),
        ("speaker", "nurse", "provider"),
        ("output_objects", [], "at least 1"),
    ],
)
def test_bad_values_are_refused_with_the_key(
    tmp_path: Path, key: str, value: object, reason: str
) -> None:
    with pytest.raises(ValidationError, match=reason):
        config(tmp_path, **{key: value})


def test_loopback_may_go_without_tls(tmp_path: Path) -> None:
    conf = config(tmp_path, url="ws://127.0.0.1:9/v1/scribe/server", token_url="http://[::1]:9/t")
    assert conf.dice.url.startswith("ws://")


def test_the_factory_builds_a_copyless_live_uplink(tmp_path: Path) -> None:
    uplinks = dice_uplinks(config(tmp_path), NoState())
    assert uplinks.service == "dice" and uplinks.live_enabled and not uplinks.holds_copy
    assert uplinks.live is uplinks.store_forward
    assert uplinks.identity("enc").correlation_id == "enc"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"encoding": {"codec": "opus"}}, "PCM16 mono only"),
        ({"dice": {"token_url": None}}, "dice.token_url"),
        ({"dice": {"username": None}}, "dice.username"),
    ],
)
def test_the_factory_refuses_what_dice_cannot_take(
    tmp_path: Path, change: dict[str, dict[str, object]], message: str
) -> None:
    conf = config(tmp_path)
    for section, values in change.items():
        for key, value in values.items():
            setattr(getattr(conf, section), key, value)
    with pytest.raises(ValueError, match=message):
        dice_uplinks(conf, NoState())


def test_notes_are_sealed_bound_to_their_name_and_written_private(tmp_path: Path) -> None:
    key = bytes(range(32))
    blob = seal(key, "e-s.json.enc", {"note": "the plan"})
    assert b"the plan" not in blob
    assert unseal(key, "e-s.json.enc", blob) == {"note": "the plan"}
    assert seal(key, "e-s.json.enc", {}) != seal(key, "e-s.json.enc", {})  # fresh nonce
    with pytest.raises(InvalidTag):
        unseal(key, "other-s.json.enc", blob)  # moved to another encounter
    with pytest.raises(InvalidTag):
        unseal(bytes(32), "e-s.json.enc", blob)
    writer = NoteWriter(tmp_path / "notes", lambda: key)
    path = writer.save("MRN-55443322-VISIT", "s1", {"note": None, "transcript": []})
    assert path is not None and path.stat().st_mode & 0o777 == 0o600
    assert "MRN" not in path.name  # named by the keyed ref, never by the correlation id
    assert path.name == f"{Identities(key).ref('MRN-55443322-VISIT')}-s1.json.enc"
    assert read_note(key, path) == {"note": None, "transcript": []}


def test_a_note_that_cannot_be_saved_does_not_raise(tmp_path: Path) -> None:
    def no_key() -> bytes:
        raise OSError("key missing")

    assert NoteWriter(tmp_path / "notes", no_key).save("e", "s", {}) is None


# ---- the emulator's pure rules


REQUEST = {
    "object": "stream_request",
    "output_objects": ["transcript", "note"],
    "streams": [{"id": "a", "speaker": "provider"}],
    "sample_rate": 16000,
    "language": "en-US",
    "note_template": "soap",
    "style": "paragraph",
    "transcribe_gen_mode": "fast",
    "note_gen_mode": "fast",
}


def test_the_emulator_checks_every_enum_of_stream_request() -> None:
    conf = p.parse_stream_request(REQUEST)
    assert conf.tracks == {"a": "provider"} and conf.outputs == ("transcript", "note")
    for key, bad in (("style", "prose"), ("note_gen_mode", "slow"), ("sample_rate", 4000)):
        with pytest.raises(p.ProtocolViolation, match=key):
            p.parse_stream_request({**REQUEST, key: bad})


def test_the_emulator_refuses_chunks_over_one_second_at_the_stream_rate() -> None:
    conf = p.parse_stream_request({**REQUEST, "sample_rate": 8000})
    ok = {"object": "audio_chunk", "stream_id": "a", "payload": base64.b64encode(bytes(16000))}
    assert p.parse_audio_chunk({**ok, "payload": ok["payload"].decode()}, conf, 1.0)[1] == bytes(
        16000
    )
    over = base64.b64encode(bytes(16002)).decode()
    with pytest.raises(p.ProtocolViolation, match="max 1 s"):
        p.parse_audio_chunk({**ok, "payload": over}, conf, 1.0)


def test_countdown_values_cross_each_whole_second_before_the_limit() -> None:
    assert p.countdown(3600, 60, 3539.5, 3540.25) == [60]
    assert p.countdown(3600, 60, 3000, 3001) == []
    assert p.countdown(10, 3, 6.5, 10) == [3, 2, 1, 0]


def test_the_emulated_transcript_goes_partial_then_final_by_id() -> None:
    t = p.Transcriber(sample_rate=1000, item_s=1.0, speaker="unknown")
    first = t.feed(bytes(1000))
    assert [(i["id"], i["is_final"]) for i in first] == [("item-0", False)]
    second = t.feed(bytes(1000))
    assert [(i["id"], i["is_final"]) for i in second] == [("item-0", True)]
    t.feed(bytes(10))
    assert [(i["id"], i["is_final"]) for i in t.flush()] == [("item-1", True)]
    note = p.note_message("soap", bytes(4), 16000)
    assert [s["sec_title"] for s in note["sections"]] == list(p.SECTIONS["soap"])


def test_old_notes_are_deleted_after_the_retention(tmp_path: Path) -> None:
    """Sealed notes are PHI: kept `notes_keep_days`, then deleted (at start-up and on save)."""
    import os
    import time

    key = b"k" * 32
    writer = NoteWriter(tmp_path / "notes", lambda: key, keep_days=7)
    old = writer.save("enc-old", "s1", {"sections": []})
    assert old is not None
    ten_days_ago = time.time() - 10 * 86400
    os.utime(old, (ten_days_ago, ten_days_ago))
    new = writer.save("enc-new", "s1", {"sections": []})  # saving prunes
    assert new is not None and new.exists() and not old.exists()
    keep_all = NoteWriter(tmp_path / "notes", lambda: key, keep_days=0)
    os.utime(new, (ten_days_ago, ten_days_ago))
    assert keep_all.prune() == 0 and new.exists()
