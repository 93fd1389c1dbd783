"""What the delivery engine must remember per recording across restarts (beside the ledger).

Two facts the spool ledger does not hold:
- `live`: the recording was (or may have been) opened on the live transport. The service then
  knows it by GUID, so it must be finished there (resume + close), never uploaded a second time
  through REST under its sequence number; REST is used only for recordings the service never
  saw, or after it forgot one.
- `rest_chunk_bytes`: the REST chunk size an upload started with. Chunk ids derive from offsets
  and this size, so a retry after a restart must use the same size or ids would name other bytes.
- `service`: small facts a non-AAS uplink keeps (`UplinkState`), such as the Corti
  interaction id of an encounter or the id of an uploaded part, so a retry after a restart
  does not create a second interaction or upload a part twice.
Saved atomically (temp, fsync, rename, fsync dir) before the action it guards, so after a
crash the file can only claim more than happened, which is the safe side.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

from edge_recorder.spool.fileops import write_private
from edge_recorder.support.logs import get_logger

log = get_logger(__name__)

STATE_NAME = "delivery.json"


class DeliveryState:
    def __init__(self, directory: Path) -> None:
        self._path = directory / STATE_NAME
        self._live: set[str] = set()
        self._chunk: dict[str, int] = {}
        self._service: dict[str, str] = {}
        self._load()

    def _load(self) -> None:
        try:
            raw = json.loads(self._path.read_bytes())
            self._live = {str(r) for r in raw.get("live", [])}
            self._chunk = {str(k): int(v) for k, v in raw.get("rest_chunk_bytes", {}).items()}
            self._service = {str(k): str(v) for k, v in raw.get("service", {}).items()}
        except FileNotFoundError:
            return
        except (ValueError, TypeError, AttributeError) as exc:
            # Losing it costs a gRPC/REST choice for old recordings, never audio: the spool
            # still holds every byte. Say so and start clean.
            log.error("delivery state unreadable; starting empty", error=type(exc).__name__)

    def is_live(self, recording_id: str) -> bool:
        return recording_id in self._live

    def mark_live(self, recording_id: str) -> None:
        if recording_id not in self._live:
            self._live.add(recording_id)
            self._save()

    def clear_live(self, recording_id: str) -> None:
        """The service forgot the recording: from now on it goes through REST."""
        if recording_id in self._live:
            self._live.discard(recording_id)
            self._save()

    def rest_chunk_bytes(self, recording_id: str, default: int) -> int:
        """The chunk size this recording's REST upload uses (fixed at its first attempt)."""
        size = self._chunk.get(recording_id)
        if size is None:
            size = self._chunk[recording_id] = default
            self._save()
        return size

    def forget_rest(self, recording_id: str) -> None:
        if self._chunk.pop(recording_id, None) is not None:
            self._save()

    # ---- UplinkState ------------------------------------------------------------------------
    def get(self, key: str) -> str | None:
        return self._service.get(key)

    def put(self, key: str, value: str) -> None:
        if self._service.get(key) != value:
            self._service[key] = value
            self._save()

    def drop(self, prefix: str) -> None:
        kept = {k: v for k, v in self._service.items() if not k.startswith(prefix)}
        if kept != self._service:
            self._service = kept
            self._save()

    def forget(self, recording_ids: Iterable[str]) -> None:
        """Drop the entries of recordings that just left the spool (their encounter was
        handed to processing), without a save of its own: an entry left on disk names a
        recording that no longer exists, which nothing acts on, and the next save or the
        start-up `prune` drops it. Called once per encounter, so it must not cost a pass over
        the whole spool nor a file write (with 2,000 encounters waiting, `prune` over every
        recording cost ~9 ms per encounter)."""
        for rid in recording_ids:
            self._live.discard(rid)
            self._chunk.pop(rid, None)

    def prune(self, keep: Iterable[str]) -> None:
        """Drop entries of recordings that left the spool."""
        kept = set(keep)
        live, chunk = self._live & kept, {k: v for k, v in self._chunk.items() if k in kept}
        if live != self._live or chunk != self._chunk:
            self._live, self._chunk = live, chunk
            self._save()

    def _save(self) -> None:
        payload = json.dumps(
            {"live": sorted(self._live), "rest_chunk_bytes": self._chunk, "service": self._service},
            separators=(",", ":"),
        ).encode()
        write_private(self._path.parent, self._path.name, payload)
