"""Small sealed JSON files beside the spool (EHR context, Dice notes): PHI at rest.

A file is a 12-byte random nonce, then AES-256-GCM of the JSON under a key derived with HKDF
from the spool's device key and a per-purpose label (never the device key itself), with the
file name as associated data, so a file renamed to another encounter does not open. A random
96-bit nonce per file is safe: a device writes a handful a day. Files are written 0600,
atomically (`fileops.write_private`).
"""

from __future__ import annotations

import json
import secrets
from typing import Any

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

NONCE_BYTES = 12


def seal_json(cipher: AESGCM, name: str, document: dict[str, Any]) -> bytes:
    nonce = secrets.token_bytes(NONCE_BYTES)
    plain = json.dumps(document, separators=(",", ":")).encode()
    return nonce + cipher.encrypt(nonce, plain, name.encode())


def unseal_json(cipher: AESGCM, name: str, blob: bytes) -> Any:
    """The decoded JSON; raises InvalidTag (wrong key, name or tampering) or ValueError."""
    return json.loads(cipher.decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], name.encode()))
