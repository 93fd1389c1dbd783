"""A recording's sealed header: what delivery needs to know about it, kept beside its audio.

The ledger is the one place that says which encounter a recording belongs to, its number
in the encounter (the service's recordingId), codec and sample rate. If the ledger is lost
or damaged, segment files alone would say nothing but a recording uuid, and their audio
could be kept but never delivered to the right encounter. So when a recording begins, the
spool writes `headers/<recording uuid hex>.head` (0600, atomically, before any segment):
`sealed.seal_json` of those fields under a key derived from the device key for this purpose
(the correlation id is PHI: never in plain text), with the file name as associated data so
a header renamed to another recording does not open. Rebuilding the ledger
(`maintenance.adopt_orphans`) reads it back. Segments written before headers existed have
none: they are still kept, as quarantined orphans.

A header goes first when its recording is deleted (reclaimed or purged), before the ledger
forgets the recording, so a crash half-way never brings purged audio back to life.
"""

from __future__ import annotations

import contextlib
import re
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from edge_recorder.spool.fileops import fsync_dir, write_private
from edge_recorder.spool.ledger import Epoch
from edge_recorder.spool.sealed import seal_json, unseal_json

HEADERS_DIR = "headers"
HEADER_SUFFIX = ".head"
HEADER_NAME = re.compile(r"^([0-9a-f]{32})\.head$")
MAX_HEADER_BYTES = 4096


class RecordingHeader(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    v: int = Field(1, ge=1, le=1)
    encounter: str = Field(min_length=1, max_length=128)
    seq: int = Field(ge=1, le=1_000_000)
    codec: str = Field(min_length=1, max_length=32)
    sample_rate: int = Field(ge=1, le=1_000_000)
    channels: int = Field(ge=1, le=64)
    created_at: Epoch


def header_name(recording_hex: str) -> str:
    return f"{recording_hex}{HEADER_SUFFIX}"


def write_header(
    spool_dir: Path, recording_hex: str, header: RecordingHeader, cipher: AESGCM
) -> None:
    """Seal and write durably (temp, fsync, rename, fsync the directory); OSError on failure."""
    name = header_name(recording_hex)
    write_private(spool_dir / HEADERS_DIR, name, seal_json(cipher, name, header.model_dump()))


def read_header(spool_dir: Path, recording_hex: str, cipher: AESGCM) -> RecordingHeader | None:
    """The header, or None when there is none or it cannot be trusted (never raises)."""
    path = spool_dir / HEADERS_DIR / header_name(recording_hex)
    try:
        with path.open("rb") as f:
            blob = f.read(MAX_HEADER_BYTES + 1)
        if len(blob) > MAX_HEADER_BYTES:
            return None
        return RecordingHeader.model_validate(unseal_json(cipher, path.name, blob), strict=True)
    except (OSError, InvalidTag, ValueError, ValidationError, RecursionError):
        return None


def drop_header(spool_dir: Path, recording_hex: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        (spool_dir / HEADERS_DIR / header_name(recording_hex)).unlink()


def sync_headers(spool_dir: Path) -> None:
    """Make dropped headers stay dropped across a power cut."""
    if (spool_dir / HEADERS_DIR).is_dir():
        fsync_dir(spool_dir / HEADERS_DIR)


def list_headers(spool_dir: Path) -> set[str]:
    """Recording hex ids that have a header file."""
    try:
        names = [p.name for p in (spool_dir / HEADERS_DIR).iterdir()]
    except OSError:  # none yet
        return set()
    return {m[1] for name in names if (m := HEADER_NAME.match(name))}
