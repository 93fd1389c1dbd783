"""The delivery rig as a fixture: spool in tmp_path, emulator behind fault proxies."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from tests.chaos.rig import Rig
from tests.support.emulator import EmulatorHandle, MakeEmulator

MakeRig = Callable[..., Awaitable[Rig]]


@pytest.fixture
async def make_rig(make_aas_emulator: MakeEmulator, tmp_path: Path) -> AsyncIterator[MakeRig]:
    """`await make_rig(emulator_settings={...}, **uplink_overrides)`; the engine is started."""
    rigs: list[Rig] = []

    async def make(
        emulator_settings: dict[str, Any] | None = None, start: bool = True, **uplink: Any
    ) -> Rig:
        emu: EmulatorHandle = await make_aas_emulator(**(emulator_settings or {}))
        rig = await Rig.create(emu, tmp_path / f"rig{len(rigs)}", **uplink)
        rigs.append(rig)
        if start:
            await rig.start_engine()
        return rig

    yield make
    for rig in rigs:
        await rig.close()


@pytest.fixture
async def rig(make_rig: MakeRig) -> Rig:
    return await make_rig()
