"""AES-256-GCM: tamper and wrong-key detection, header binding, and device-key handling."""

from __future__ import annotations

import os
import stat
import threading
import uuid
from pathlib import Path

import pytest

from edge_recorder.spool.crypto import (
    InvalidTag,
    SegmentCipher,
    SpoolKeyError,
    key_id,
    load_key,
    parse_key,
)
from edge_recorder.spool.records import RecordHeader

KEY = bytes(range(32))
SALT = b"s" * 32


def _aad(offset: int = 0, seq: int = 0, rec: bytes = b"r" * 16) -> bytes:
    return RecordHeader(rec, seq, offset, 5).aad


def test_seal_open_round_trip_and_no_plaintext_in_ciphertext() -> None:
    cipher = SegmentCipher(KEY, SALT)
    sealed = cipher.seal(3, _aad(), b"hello")
    assert b"hello" not in sealed and len(sealed) == 5 + 16
    assert cipher.open(3, _aad(), sealed) == b"hello"


def test_tampered_ciphertext_fails() -> None:
    cipher = SegmentCipher(KEY, SALT)
    sealed = bytearray(cipher.seal(0, _aad(), b"hello"))
    sealed[2] ^= 1
    with pytest.raises(InvalidTag):
        cipher.open(0, _aad(), bytes(sealed))


def test_wrong_key_or_wrong_segment_salt_fails() -> None:
    sealed = SegmentCipher(KEY, SALT).seal(0, _aad(), b"hello")
    with pytest.raises(InvalidTag):
        SegmentCipher(bytes(32), SALT).open(0, _aad(), sealed)
    with pytest.raises(InvalidTag):
        SegmentCipher(KEY, b"t" * 32).open(0, _aad(), sealed)


@pytest.mark.parametrize(
    "moved", [_aad(offset=3200), _aad(seq=1), _aad(rec=b"x" * 16)], ids=["offset", "slot", "rec"]
)
def test_a_record_cannot_be_moved(moved: bytes) -> None:
    cipher = SegmentCipher(KEY, SALT)
    sealed = cipher.seal(0, _aad(), b"hello")
    with pytest.raises(InvalidTag):
        cipher.open(0 if moved != _aad(seq=1) else 1, moved, sealed)


def test_nonce_is_the_sequence_number_and_distinct_per_record() -> None:
    nonces = {SegmentCipher.nonce(i) for i in range(10_000)}
    assert len(nonces) == 10_000 and all(len(n) == 12 for n in nonces)


def test_key_is_created_once_with_mode_0600(tmp_path: Path) -> None:
    key_file = tmp_path / "dir" / "spool.key"
    key, source = load_key(key_file, allow_create=True, environ={})
    assert source == "file" and len(key) == 32
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert load_key(key_file, allow_create=True, environ={})[0] == key
    assert [p.name for p in key_file.parent.iterdir()] == ["spool.key"]  # no temp left


def test_racing_creators_agree_on_one_key(tmp_path: Path) -> None:
    key_file = tmp_path / "spool.key"
    keys: list[bytes] = []
    barrier = threading.Barrier(4)

    def create() -> None:
        barrier.wait()
        keys.append(load_key(key_file, allow_create=True, environ={})[0])

    threads = [threading.Thread(target=create) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(keys)) == 1 and len(keys) == 4


def test_credential_wins_over_the_file(tmp_path: Path) -> None:
    (tmp_path / "spool.key").write_text(bytes(32).hex())
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "spool-key").write_bytes(KEY)
    key, source = load_key(
        tmp_path / "spool.key", allow_create=True, environ={"CREDENTIALS_DIRECTORY": str(creds)}
    )
    assert (key, source) == (KEY, "credential")


def test_missing_key_is_not_invented_when_data_exists(tmp_path: Path) -> None:
    with pytest.raises(SpoolKeyError, match="restore the key"):
        load_key(tmp_path / "spool.key", allow_create=False, environ={})
    assert not (tmp_path / "spool.key").exists()


@pytest.mark.parametrize(
    "raw",
    [KEY, KEY.hex().encode() + b"\n", b"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n"],
    ids=["raw", "hex", "base64"],
)
def test_key_formats(raw: bytes) -> None:
    assert parse_key(raw, "test") == KEY


@pytest.mark.parametrize("raw", [b"", b"short", os.urandom(31), b"z" * 64])
def test_malformed_keys_are_a_clear_error(raw: bytes) -> None:
    with pytest.raises(SpoolKeyError, match="not 32 raw bytes"):
        parse_key(raw, "test")


def test_key_id_is_stable_and_reveals_nothing_obvious() -> None:
    assert key_id(KEY) == key_id(KEY) != key_id(bytes(32))
    assert KEY.hex()[:16] != key_id(KEY)


def test_segments_never_share_a_salt(tmp_path: Path) -> None:
    from edge_recorder.spool.fileops import OsFileOps
    from edge_recorder.spool.segments import SegmentWriter

    rec = uuid.uuid4()
    salts = set()
    for base in range(50):
        w = SegmentWriter.create(tmp_path, rec, base, KEY, OsFileOps())
        w.close()
        salts.add(w.ref.path.read_bytes()[24:56])
    assert len(salts) == 50
