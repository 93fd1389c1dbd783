"""Reading a spool directory back at open: the ledger (checked, journal replayed), the key
that must match it, and every recording the segments show, repaired after a crash.

Apart from `SpoolCore` because it is the one part that runs before the spool exists as an
object: what it returns is the whole starting state, and nothing here writes the ledger."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from edge_recorder.spool import crypto
from edge_recorder.spool.fileops import FileOps
from edge_recorder.spool.headers import RecordingHeader, drop_header, list_headers, read_header
from edge_recorder.spool.identity import Identities
from edge_recorder.spool.journal import load_state
from edge_recorder.spool.ledger import LedgerData, set_aside
from edge_recorder.spool.maintenance import adopt_orphans, check_against_segments, recover_all
from edge_recorder.spool.segments import list_segments
from edge_recorder.spool.state import SpooledRecording
from edge_recorder.support.logs import get_logger

log = get_logger(__name__)


@dataclass
class OpenedState:
    key: bytes
    key_origin: str  # where the key came from (file, credential, created): logged, never the key
    ids: Identities
    ledger: LedgerData
    recordings: dict[str, SpooledRecording]


def read_spool(
    spool_dir: Path,
    segments_dir: Path,
    key_file: Path,
    *,
    environ: Mapping[str, str] | None,
    ops: FileOps,
    now: Callable[[], float],
) -> OpenedState:
    """The spool's state on disk; raises SpoolKeyError if the key is not the spool's.

    A ledger damaged in a way its shape could not show is set aside (and rebuilt from the
    sealed recording headers); recordings the segments hold but the ledger lost are adopted;
    headers of recordings that never were are dropped."""
    stored = load_state(spool_dir)  # ledger + journal, checked; bad: set aside
    groups, strays = list_segments(segments_dir)
    for stray in strays:
        log.warning("unexpected file in spool segments dir", path=str(stray))
    allow_create = stored.key_id is None and not groups
    key, origin = crypto.load_key(key_file, allow_create=allow_create, environ=environ)
    kid = crypto.key_id(key)
    if stored.key_id not in (None, kid):
        raise crypto.SpoolKeyError(
            f"spool key from {origin} (id {kid}) is not the key this spool was written "
            f"with (id {stored.key_id}); restore the original key"
        )
    ids = Identities(key)
    try:
        ledger = ids.from_disk(stored)
        check_against_segments(ledger, groups)
    except ValueError as exc:  # damage the file's shape could not show
        ledger = set_aside(spool_dir, str(exc))
    ledger.key_id = kid
    recordings = recover_all(ledger, groups, ops)

    def header_of(recording_hex: str) -> RecordingHeader | None:
        return read_header(spool_dir, recording_hex, ids.header_cipher)

    recordings.update(adopt_orphans(ledger, groups, ops, now(), header_of))
    known = {live.uuid.hex for live in recordings.values()}
    for stale in list_headers(spool_dir) - known:  # a recording that never was
        drop_header(spool_dir, stale)
    return OpenedState(key, origin, ids, ledger, recordings)
