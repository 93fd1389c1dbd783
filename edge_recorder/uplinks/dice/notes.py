"""The notes and transcripts Dice sends back: PHI, so encrypted at rest and never logged.

Each stream's result is one file `<spool.dir>/notes/<encounter_ref>-<stream>.json.enc`
(mode 0600; the keyed `encounter_ref` the status and the fleet show, never the correlation
id, which may be a guessable EHR identifier): a 12-byte random nonce, then AES-256-GCM of
the JSON, with the file name as associated data (a file renamed to another encounter fails
to open). The key is derived with HKDF from the spool's device key
(`spool.crypto.load_key`: the systemd credential 'spool-key', else `spool.key_file`), so the
device key itself never seals data, as in the
spool. A random 96-bit nonce per file is safe: a device writes a few files per encounter.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from edge_recorder.spool.crypto import derive_cipher
from edge_recorder.spool.fileops import write_private
from edge_recorder.spool.identity import Identities
from edge_recorder.spool.sealed import seal_json, unseal_json
from edge_recorder.support.logs import get_logger

log = get_logger(__name__)

SUFFIX = ".json.enc"
_INFO = b"edge-recorder dice notes v1"


def seal(device_key: bytes, name: str, document: dict[str, Any]) -> bytes:
    return seal_json(derive_cipher(device_key, _INFO), name, document)


def unseal(device_key: bytes, name: str, blob: bytes) -> dict[str, Any]:
    """The document; raises cryptography's InvalidTag for a wrong key, name or tampering."""
    loaded: dict[str, Any] = unseal_json(derive_cipher(device_key, _INFO), name, blob)
    return loaded


def read_note(device_key: bytes, path: Path) -> dict[str, Any]:
    """Open a saved note file (for an operator tool or a test)."""
    return unseal(device_key, path.name, path.read_bytes())


class NoteWriter:
    """Writes sealed note files; `load_key` is called lazily (the spool creates the key)."""

    def __init__(
        self, directory: Path, load_key: Callable[[], bytes], keep_days: float = 0.0
    ) -> None:
        self.directory = directory
        self._load_key = load_key
        self._key: bytes | None = None
        self.keep_s = keep_days * 86400.0  # 0: keep until deleted by hand

    def prune(self, now: float | None = None) -> int:
        """Delete sealed notes older than the retention (PHI kept no longer than needed);
        returns how many. Failures are logged without names and never raised."""
        if self.keep_s <= 0:
            return 0
        cutoff = (time.time() if now is None else now) - self.keep_s
        removed = 0
        try:
            for path in self.directory.glob(f"*{SUFFIX}"):
                with contextlib.suppress(FileNotFoundError):
                    if path.stat().st_mtime < cutoff:
                        path.unlink()
                        removed += 1
        except OSError as exc:
            log.warning("old dice notes not pruned", error=type(exc).__name__)
        if removed:
            log.info("old dice notes deleted", notes_count=removed)
        return removed

    def save(self, encounter: str, stream: str, document: dict[str, Any]) -> Path | None:
        """Seal and write atomically; on failure log (no content) and return None: the
        note is a by-product, the audio in the spool stays the record."""
        try:
            if self._key is None:
                self._key = self._load_key()
            name = f"{Identities(self._key).ref(encounter)}-{stream}{SUFFIX}"
            path = write_private(self.directory, name, seal(self._key, name, document))
        except Exception as exc:  # any failure: keep delivering audio
            log.warning("dice note not saved", error=type(exc).__name__)
            return None
        self.prune()
        return path
