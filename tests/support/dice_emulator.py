"""The Dice STREAM emulator in-process on 127.0.0.1 (free port, tmp data dir), plus a handle
whose helpers use the emulator's own HTTP inspection API (what a developer sees with curl).

Import the fixtures by name (`from tests.support.dice_emulator import dice_emulator,
make_dice_emulator`) in a test module or conftest.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import pytest

from devtools.emulators.dice.server import DiceEmulator
from devtools.emulators.dice.settings import DiceEmulatorSettings
from tests.support.inspect_http import inspect_bytes, inspect_call


class DiceEmulatorHandle:
    def __init__(self, emulator: DiceEmulator) -> None:
        self.emulator = emulator

    settings = property(lambda self: self.emulator.settings)
    http_url = property(lambda self: self.emulator.http_url)
    ws_url = property(lambda self: self.emulator.ws_url)
    token_url = property(lambda self: self.emulator.token_url)
    refresh_url = property(lambda self: self.emulator.refresh_url)
    username = property(lambda self: self.emulator.settings.username)
    password = property(lambda self: self.emulator.settings.password)
    tokens = property(lambda self: self.emulator.tokens)

    async def restart(self) -> None:
        """Stop, then start a fresh emulator on the same port and data dir."""
        old = self.emulator
        await old.stop()
        self.emulator = DiceEmulator(dataclasses.replace(old.settings, http_port=old.http_port))
        await self.emulator.start()

    async def _call(self, method: str, path: str, body: Any = None) -> Any:
        return await inspect_call(self.http_url, method, path, body)

    async def sessions(self) -> list[dict[str, Any]]:
        return list((await self._call("GET", "/_emulator/sessions"))["sessions"])

    async def session(self, index: int) -> dict[str, Any]:
        return dict(await self._call("GET", f"/_emulator/sessions/{index}"))

    async def stream_bytes(self, index: int) -> bytes:
        return await inspect_bytes(self.http_url, f"/_emulator/sessions/{index}/raw")

    async def add_fault(self, **spec: Any) -> dict[str, Any]:
        return dict(await self._call("POST", "/_emulator/faults", spec))

    async def clear_faults(self) -> None:
        await self._call("DELETE", "/_emulator/faults")

    async def sign_in(self) -> dict[str, Any]:
        form = {"grant_type": "password", "username": self.username, "password": self.password}
        async with aiohttp.ClientSession() as http, http.post(self.token_url, data=form) as r:
            r.raise_for_status()
            return dict(await r.json())


MakeDiceEmulator = Callable[..., Awaitable[DiceEmulatorHandle]]


@pytest.fixture
async def make_dice_emulator(
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[MakeDiceEmulator]:
    """`await make_dice_emulator(**DiceEmulatorSettings fields)`; all stopped at teardown."""
    handles: list[DiceEmulatorHandle] = []

    async def make(**overrides: Any) -> DiceEmulatorHandle:
        overrides.setdefault("data_dir", tmp_path_factory.mktemp("dice-emulator"))
        overrides.setdefault("host", "127.0.0.1")
        overrides.setdefault("http_port", 0)
        emulator = DiceEmulator(DiceEmulatorSettings(**overrides))
        await emulator.start()
        handle = DiceEmulatorHandle(emulator)
        handles.append(handle)
        return handle

    yield make
    for handle in handles:
        await handle.emulator.stop()


@pytest.fixture
async def dice_emulator(make_dice_emulator: MakeDiceEmulator) -> DiceEmulatorHandle:
    return await make_dice_emulator()
