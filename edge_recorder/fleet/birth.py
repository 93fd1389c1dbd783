"""The birth sequence number: one per MQTT session, increasing across restarts.

Sparkplug B's bdSeq idea: the online message and the Last Will of a session carry the same
number, so a dashboard (and the device itself) can recognise a will that arrives after a newer
birth as stale. The last value is kept in a small file; if the file cannot be written the
counter still increases within the process and a warning says ordering across restarts is lost.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

from edge_recorder.support.logs import get_logger

log = get_logger(__name__)


class BirthCounter:
    def __init__(self, path: Path | None) -> None:
        self._path = path
        self._lock = threading.Lock()
        self._value = self._load()
        self._warned = False

    @property
    def value(self) -> int:
        return self._value

    def _load(self) -> int:
        if self._path is None:
            return 0
        try:
            return max(0, int(self._path.read_text(encoding="ascii").strip() or 0))
        except FileNotFoundError:
            return 0
        except (OSError, ValueError) as exc:
            log.warning(
                "birth sequence file unreadable; starting from 0",
                file=str(self._path),
                error=str(exc),
            )
            return 0

    def next(self) -> int:
        """The number for a new session, persisted (write, fsync, rename) before use."""
        with self._lock:
            self._value += 1
            self._save(self._value)
            return self._value

    def _save(self, value: int) -> None:
        if self._path is None:
            return
        tmp = self._path.with_name(self._path.name + ".tmp")
        try:
            self._path.parent.mkdir(parents=True, exist_ok=True)
            with tmp.open("w", encoding="ascii") as handle:
                handle.write(f"{value}\n")
                handle.flush()
                os.fsync(handle.fileno())
            tmp.replace(self._path)
        except OSError as exc:
            if not self._warned:
                self._warned = True
                log.warning(
                    "cannot persist birth sequence; ordering across restarts is lost",
                    file=str(self._path),
                    error=exc.strerror or str(exc),
                )
