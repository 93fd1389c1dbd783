"""Shared spool test helpers: a config in tmp_path, a simulated crash, a fake clock."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from edge_recorder.config.model import SpoolConfig
from edge_recorder.spool import Spool

NO_CREDENTIALS: dict[str, str] = {}


def spool_config(tmp_path: Path, **overrides: Any) -> SpoolConfig:
    values: dict[str, Any] = {
        "dir": tmp_path / "spool",
        "key_file": tmp_path / "spool.key",
        "reserve_free_bytes": 0,
    }
    values.update(overrides)
    return SpoolConfig(**values)


def open_spool(config: SpoolConfig, **kwargs: Any) -> Spool:
    kwargs.setdefault("environ", NO_CREDENTIALS)
    return Spool.open(config, **kwargs)


def crash(spool: Spool) -> None:
    """What SIGKILL leaves: written bytes in the files, nothing closed, no final ledger save."""
    for live in spool._live.values():
        writer = live.writer
        if writer is not None and writer._segment is not None:
            writer._segment.close()
    for _, reader in spool._readers.values():
        reader.close()
    spool._journal.close()  # the fd only: a killed process writes nothing more
    spool._dir_lock.release()


def new_id() -> str:
    return str(uuid.uuid4())


class FakeClock:
    """Monotonic time that only moves when a test says so."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def all_spool_bytes(directory: Path) -> bytes:
    """Every byte of every file under the spool directory (segments, ledger, everything)."""
    return b"".join(p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file())
