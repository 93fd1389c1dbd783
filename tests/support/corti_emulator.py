"""The Corti emulator in-process on 127.0.0.1 (free port, tmp data dir), with thin helpers over
its `/_emulator` inspection API, so a test sees what a developer would with curl.

Import the fixtures by name (`from tests.support.corti_emulator import corti_emulator,
make_corti_emulator`) in a conftest or test module.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from devtools.emulators.corti.app import CortiEmulator
from devtools.emulators.corti.settings import CortiEmulatorSettings
from edge_recorder.config.model import Config
from tests.support.inspect_http import inspect_bytes, inspect_call


class CortiHandle:
    def __init__(self, emulator: CortiEmulator) -> None:
        self.emulator = emulator

    settings = property(lambda self: self.emulator.settings)
    http_url = property(lambda self: self.emulator.http_url)
    api_url = property(lambda self: self.emulator.api_url)
    auth_url = property(lambda self: self.emulator.auth_url)
    ws_url = property(lambda self: self.emulator.ws_url)
    tenant = property(lambda self: self.emulator.settings.tenant)
    client_id = property(lambda self: self.emulator.settings.client_id)
    client_secret = property(lambda self: self.emulator.settings.client_secret)

    @property
    def token_url(self) -> str:
        return f"{self.auth_url}/{self.tenant}/protocol/openid-connect/token"

    def corti_section(
        self, secret_file: Path, base: str | None = None, **extra: Any
    ) -> dict[str, Any]:
        """The `[corti]` keys of a device pointed at this emulator (or at `base`, a proxy)."""
        root = base or self.http_url
        return {
            "api_url": root + "/v2",
            "auth_url": root + "/realms",
            "ws_url": root.replace("http://", "ws://") + "/audio-bridge/v2",
            "tenant": self.tenant,
            "client_id": self.client_id,
            "client_secret_file": str(secret_file),
            **extra,
        }

    def config(self, tmp_path: Path, base: str | None = None, **extra: Any) -> Config:
        secret = tmp_path / "corti-secret"
        secret.write_text(self.client_secret + "\n")
        return Config.model_validate(
            {
                "uplink": {"service": "corti", "connect_timeout_s": 2, "request_timeout_s": 5},
                "corti": self.corti_section(secret, base, **extra),
            }
        )

    async def restart(self) -> None:
        old = self.emulator
        await old.stop()
        self.emulator = CortiEmulator(dataclasses.replace(old.settings, http_port=old.http_port))
        await self.emulator.start()

    async def _call(self, method: str, path: str, json_body: Any = None) -> Any:
        return await inspect_call(self.http_url, method, path, json_body)

    async def sessions(self) -> list[dict[str, Any]]:
        return list((await self._call("GET", "/_emulator/sessions"))["sessions"])

    async def session(self, key: str) -> dict[str, Any]:
        """By interaction id or the device's encounter id."""
        return dict(await self._call("GET", f"/_emulator/sessions/{key}"))

    async def _bytes(self, path: str) -> bytes:
        return await inspect_bytes(self.http_url, path)

    async def raw(self, key: str, recording_id: str) -> bytes:
        return await self._bytes(f"/_emulator/sessions/{key}/recordings/{recording_id}/raw")

    async def audio(self, key: str, recording_id: str) -> bytes:
        return await self._bytes(f"/_emulator/sessions/{key}/recordings/{recording_id}/audio")

    async def add_fault(self, **spec: Any) -> dict[str, Any]:
        return dict(await self._call("POST", "/_emulator/faults", spec))

    async def clear_faults(self) -> None:
        await self._call("DELETE", "/_emulator/faults")

    async def forget_interaction(self, key: str) -> None:
        await self.add_fault(kind="forget_interaction", key=key)

    async def forget_recording(self, key: str, recording_id: str) -> None:
        await self.add_fault(kind="forget_recording", key=key, recordingId=recording_id)

    async def mint_token(self, **spec: Any) -> str:
        return str((await self._call("POST", "/_emulator/tokens", spec))["access_token"])

    async def info(self) -> dict[str, Any]:
        return dict(await self._call("GET", "/_emulator/info"))


MakeCorti = Callable[..., Awaitable[CortiHandle]]


@pytest.fixture
async def make_corti_emulator(tmp_path: Path) -> AsyncIterator[MakeCorti]:
    """`await make_corti_emulator(transcripts_async=True, …)` → a running emulator."""
    started: list[CortiHandle] = []

    async def make(**overrides: Any) -> CortiHandle:
        data = tmp_path / f"corti-emulator-{len(started)}"
        emulator = CortiEmulator(CortiEmulatorSettings(data_dir=data, **overrides))
        await emulator.start()
        handle = CortiHandle(emulator)
        started.append(handle)
        return handle

    yield make
    for handle in started:
        await handle.emulator.stop()


@pytest.fixture
async def corti_emulator(make_corti_emulator: MakeCorti) -> CortiHandle:
    return await make_corti_emulator()
