"""The capture thread's tests share a device config (energy VAD: no model to load) and a spool
opened on it; a test module may override `config` (the spool follows it)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from edge_recorder.config.model import Config
from edge_recorder.spool import Spool


@pytest.fixture
def config(tmp_path: Path) -> Config:
    return Config.model_validate(
        {
            "vad": {"engine": "energy"},
            "spool": {"dir": str(tmp_path / "spool"), "key_file": str(tmp_path / "key")},
        }
    )


@pytest.fixture
def spool(config: Config) -> Iterator[Spool]:
    opened = Spool.open(config.spool)
    yield opened
    opened.close()
