"""Corti client ↔ the real Corti emulator on 127.0.0.1 (fixtures imported by name)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from edge_recorder.delivery.state import DeliveryState
from edge_recorder.uplinks.bundle import Uplinks
from tests.support.corti_emulator import CortiHandle, corti_emulator, make_corti_emulator

__all__ = ["corti_emulator", "make_corti_emulator", "state", "uplinks"]


@pytest.fixture
def state(tmp_path: Path) -> DeliveryState:
    """The engine's real persisted state file (what survives a daemon restart)."""
    folder = tmp_path / "spool"
    folder.mkdir()
    return DeliveryState(folder)


@pytest.fixture
async def uplinks(
    corti_emulator: CortiHandle, state: DeliveryState, tmp_path: Path
) -> AsyncIterator[Uplinks]:
    from edge_recorder.uplinks.corti.factory import corti_uplinks

    bundle = corti_uplinks(corti_emulator.config(tmp_path, template_keys=["corti-soap"]), state)
    yield bundle
    await bundle.aclose()
