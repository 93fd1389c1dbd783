"""An encounter's EHR context (who it is for at the service): PHI, so sealed at rest like audio.

`ctl start --context-json` and MQTT `start` may name the practitioner (`external_user_id`) and
the EHR instance of an encounter. Delivery can happen hours later (after an outage or a
restart), so the context is kept beside the audio it belongs to, encrypted the same way:
`<spool>/context/<HMAC(encounter)[:32]>.enc` holds a 12-byte random nonce, then AES-256-GCM
of the JSON under a key derived with HKDF from the spool key (never the key itself), with the
file name as associated data so a file renamed to another encounter does not open. The file
name hides the encounter id (it may be an EHR identifier): it is keyed (`identity.py`), since
an unkeyed hash of a guessable id is reversed by trying the guesses. Files named by older
versions (sha256 of the id) are still read, and renamed on first use or when the spool opens.
A context is removed when the encounter's audio is reclaimed (processing started) or purged.
A random nonce per file is safe: a device writes a handful per day.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from edge_recorder.spool.crypto import derive_cipher
from edge_recorder.spool.fileops import write_private
from edge_recorder.spool.identity import legacy_context_name
from edge_recorder.spool.sealed import seal_json, unseal_json
from edge_recorder.support.logs import get_logger

log = get_logger(__name__)

CONTEXT_DIR = "context"
_INFO = b"edge-recorder encounter context v1"
SUFFIX = ".enc"


class EncounterContexts:
    """Sealed per-encounter context files; the key is fetched lazily from the open spool,
    `name` is its keyed file name for an encounter id (`Identities.context_name`)."""

    def __init__(
        self, directory: Path, device_key: Callable[[], bytes], name: Callable[[str], str]
    ) -> None:
        self.directory = directory
        self._device_key = device_key
        self._name = name
        self._cipher: AESGCM | None = None

    def _file_name(self, correlation_id: str) -> str:
        return self._name(correlation_id) + SUFFIX

    def _aead(self) -> AESGCM:
        if self._cipher is None:
            self._cipher = derive_cipher(self._device_key(), _INFO)
        return self._cipher

    def save(self, correlation_id: str, values: Mapping[str, Any]) -> None:
        """Seal and write atomically (temp, fsync, rename, fsync the directory)."""
        name = self._file_name(correlation_id)
        write_private(self.directory, name, seal_json(self._aead(), name, dict(values)))

    def load(self, correlation_id: str) -> dict[str, Any] | None:
        """The context, or None when there is none or it cannot be opened (then logged, with
        no content: the audio is still delivered, under the device's configured identity)."""
        path = self.directory / self._file_name(correlation_id)
        try:
            blob = path.read_bytes()
        except FileNotFoundError:
            return self._migrate(correlation_id)
        except OSError as exc:
            log.error("encounter context unreadable", error=type(exc).__name__)
            return None
        try:
            loaded = unseal_json(self._aead(), path.name, blob)
        except (InvalidTag, ValueError) as exc:
            log.error("encounter context corrupt; using the configured identity",
                      error=type(exc).__name__)  # fmt: skip
            return None
        return loaded if isinstance(loaded, dict) else None

    def _migrate(self, correlation_id: str) -> dict[str, Any] | None:
        """A context an older version saved under the unkeyed name: read it, save it under
        the keyed name, remove the old file (the old name is an oracle for the id)."""
        old = self.directory / (legacy_context_name(correlation_id) + SUFFIX)
        try:
            loaded = unseal_json(self._aead(), old.name, old.read_bytes())
        except FileNotFoundError:
            return None
        except (OSError, InvalidTag, ValueError) as exc:
            log.error("encounter context unreadable", error=type(exc).__name__)
            return None
        if not isinstance(loaded, dict):
            return None
        try:
            self.save(correlation_id, loaded)
            old.unlink()
        except OSError as exc:  # kept under the old name; read again next time
            log.warning("encounter context not renamed", error=type(exc).__name__)
        return loaded

    def migrate(self, correlation_ids: Iterable[str]) -> int:
        """Rename the old-style files of these encounters (at open); returns how many."""
        try:
            olds = {p.name for p in self.directory.iterdir()}
        except OSError:  # no context yet (or unreadable: then each load says so)
            return 0
        count = 0
        for cid in correlation_ids:
            if legacy_context_name(cid) + SUFFIX in olds and self._migrate(cid) is not None:
                count += 1
        return count

    def drop(self, correlation_id: str) -> None:
        for name in (self._file_name(correlation_id), legacy_context_name(correlation_id) + SUFFIX):
            with contextlib.suppress(FileNotFoundError):
                (self.directory / name).unlink()
