"""AES-256-GCM at rest: the device key, per-segment subkeys, and a nonce that never repeats.

Nonce scheme (the AES-GCM-HKDF construction of Tink's streaming AEAD): each segment file
draws a fresh random 256-bit salt, and its records are sealed with a subkey
HKDF-SHA256(device key, salt). Within a segment the 96-bit nonce is the record's sequence
number, which only ever increases (a failed write still consumes its number) and a segment is
never appended to after the process that created it is gone: recovery always starts a new
segment. So a (subkey, nonce) pair is never reused; subkeys only collide if two random 256-bit
salts do (~2^-128 even for 2^64 segments). Unlike a random 96-bit nonce per record this has no
2^32-message birthday limit, and unlike a persisted counter it cannot roll back with a lost
ledger write. The device key itself never seals data.

Each record's 36-byte header (recording id, seq, offset, length) is the associated data, so a
record cannot be moved to another recording, offset or slot without failing authentication.
"""

from __future__ import annotations

import base64
import binascii
import os
import secrets
from collections.abc import Mapping
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from edge_recorder.spool.errors import SpoolKeyError
from edge_recorder.spool.fileops import fsync_dir
from edge_recorder.spool.records import SALT_BYTES
from edge_recorder.support.credentials import credential_path
from edge_recorder.support.logs import get_logger

log = get_logger(__name__)

KEY_BYTES = 32
CREDENTIAL_NAME = "spool-key"
_SEGMENT_INFO = b"edge-recorder spool segment v1"
_KEY_ID_INFO = b"edge-recorder spool key id v1"

__all__ = [
    "InvalidTag",
    "SegmentCipher",
    "SpoolKeyError",
    "derive_cipher",
    "derive_key",
    "key_id",
    "load_key",
    "new_salt",
    "parse_key",
]


def _hkdf(key: bytes, salt: bytes | None, info: bytes, length: int = KEY_BYTES) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=salt, info=info).derive(key)


def derive_key(device_key: bytes, info: bytes) -> bytes:
    """A 32-byte key for one purpose (`info` labels it), derived from the device key."""
    return _hkdf(device_key, None, info)


def derive_cipher(device_key: bytes, info: bytes) -> AESGCM:
    """An AEAD for one purpose (`info` labels it), keyed from the device key, never with it."""
    return AESGCM(derive_key(device_key, info))


def key_id(key: bytes) -> str:
    """A short public fingerprint of the key (stored in the ledger to detect a wrong key)."""
    return _hkdf(key, None, _KEY_ID_INFO, 8).hex()


def new_salt() -> bytes:
    return secrets.token_bytes(SALT_BYTES)


class SegmentCipher:
    """Seals/opens the records of one segment (one salt, one subkey)."""

    def __init__(self, device_key: bytes, salt: bytes) -> None:
        self._aead = AESGCM(_hkdf(device_key, salt, _SEGMENT_INFO))

    @staticmethod
    def nonce(seq: int) -> bytes:
        return seq.to_bytes(12, "big")

    def seal(self, seq: int, aad: bytes, plaintext: bytes) -> bytes:
        return self._aead.encrypt(self.nonce(seq), plaintext, aad)

    def open(self, seq: int, aad: bytes, ciphertext: bytes) -> bytes:
        """Plaintext; raises cryptography's InvalidTag on tampering or a wrong key."""
        return self._aead.decrypt(self.nonce(seq), ciphertext, aad)


def parse_key(raw: bytes, source: str) -> bytes:
    """32 raw bytes, or 64 hex characters, or base64 of 32 bytes (what systemd-creds holds)."""
    if len(raw) == KEY_BYTES:
        return raw
    text = raw.strip()
    try:
        if len(text) == 2 * KEY_BYTES:
            return bytes.fromhex(text.decode("ascii"))
        decoded = base64.b64decode(text, validate=True)
        if len(decoded) == KEY_BYTES:
            return decoded
    except (ValueError, binascii.Error, UnicodeDecodeError):
        pass
    raise SpoolKeyError(
        f"spool key from {source} is not 32 raw bytes, 64 hex characters or base64 of 32 bytes"
    )


def _create_key_file(key_file: Path) -> None:
    """Atomically create the key: write a 0600 temp file, fsync, hard-link into place.

    link() fails if the name exists, so two processes racing both end up with one key and a
    reader never sees a half-written key file.
    """
    key_file.parent.mkdir(parents=True, exist_ok=True)
    tmp = key_file.with_name(f".{key_file.name}.{secrets.token_hex(8)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, (secrets.token_bytes(KEY_BYTES).hex() + "\n").encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.link(tmp, key_file)
        log.info("spool key created", key_file=str(key_file))
    except FileExistsError:
        pass  # another process won the race; use its key
    finally:
        tmp.unlink(missing_ok=True)
    fsync_dir(key_file.parent)


def load_key(
    key_file: Path,
    *,
    allow_create: bool,
    environ: Mapping[str, str] | None = None,
) -> tuple[bytes, str]:
    """(key, where it came from). The systemd credential 'spool-key' wins over the file.

    `allow_create` is False when the spool already holds data: a missing key then means the
    data is unreadable, and inventing a new key would hide that.
    """
    cred = credential_path(CREDENTIAL_NAME, environ)
    if cred is not None:
        try:
            return parse_key(cred.read_bytes(), f"credential '{CREDENTIAL_NAME}'"), "credential"
        except OSError as exc:
            raise SpoolKeyError(
                f"cannot read credential '{CREDENTIAL_NAME}': {exc.strerror}"
            ) from None
    if not key_file.exists():
        if not allow_create:
            raise SpoolKeyError(
                f"spool key {key_file} is missing but the spool holds encrypted data; "
                "restore the key (a new key cannot read the backlog)"
            )
        _create_key_file(key_file)
    try:
        raw = key_file.read_bytes()
        mode = key_file.stat().st_mode & 0o077
    except OSError as exc:
        raise SpoolKeyError(f"cannot read spool key {key_file}: {exc.strerror}") from None
    if mode:
        log.warning("spool key file is readable by group/others; chmod 600", key_file=str(key_file))
    return parse_key(raw, str(key_file)), "file"
