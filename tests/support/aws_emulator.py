"""The AWS scribe streaming emulator in-process on 127.0.0.1 (free ports, tmp data dir), plus
helpers over its own inspection API and a client factory wired to it.

Import the fixtures by name in a conftest (`from tests.support.aws_emulator import ...`).
Credentials reach the client the standard way: AWS_* environment variables (monkeypatched).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from devtools.emulators.aws.app import AwsEmulator, AwsEmulatorSettings
from devtools.emulators.aws.cli import TEST_DOMAIN, TEST_OUTPUT, TEST_SUBSCRIPTION
from edge_recorder.config.services.aws import AwsScribeConfig
from edge_recorder.uplinks.aws.client import AwsScribeClient
from edge_recorder.uplinks.aws.credentials import CredentialSource
from edge_recorder.uplinks.aws.protocol import PROFILES
from edge_recorder.uplinks.aws.stream import AudioSpec
from edge_recorder.uplinks.bundle import MemoryState

ACCESS_KEY = "AKIDAWSEMULATORTEST"
SECRET_KEY = "aws-emulator-test-secret/+="


class AwsEmulatorHandle:
    def __init__(self, emulator: AwsEmulator) -> None:
        self.emulator = emulator

    endpoint_url = property(lambda self: self.emulator.endpoint_url)
    http_url = property(lambda self: self.emulator.http_url)
    ca_file = property(lambda self: self.emulator.ca_file)
    data_dir = property(lambda self: self.emulator.settings.data_dir)

    async def restart(self) -> None:
        old = self.emulator
        await old.stop()
        settings = old.settings
        settings.http_port, settings.http2_port = old.http_port, old.http2_port
        self.emulator = AwsEmulator(settings)
        await self.emulator.start()

    async def _get(self, path: str) -> Any:
        async with aiohttp.ClientSession() as s, s.get(self.http_url + path) as r:
            r.raise_for_status()
            return await r.json()

    async def sessions(self) -> list[dict[str, Any]]:
        return list((await self._get("/_emulator/sessions"))["sessions"])

    async def session(self, sid: str) -> dict[str, Any]:
        return dict(await self._get(f"/_emulator/sessions/{sid}"))

    async def stream_bytes(self, sid: str, index: int) -> bytes:
        url = f"{self.http_url}/_emulator/sessions/{sid}/streams/{index}/raw"
        async with aiohttp.ClientSession() as s, s.get(url) as r:
            r.raise_for_status()
            return await r.read()

    async def session_bytes(self, sid: str) -> bytes:
        async with (
            aiohttp.ClientSession() as s,
            s.get(f"{self.http_url}/_emulator/sessions/{sid}/raw") as r,
        ):
            r.raise_for_status()
            return await r.read()

    async def fault(self, **spec: Any) -> int:
        async with (
            aiohttp.ClientSession() as s,
            s.post(self.http_url + "/_emulator/faults", json=spec) as r,
        ):
            assert r.status == 201, await r.text()
            return int((await r.json())["id"])

    def config(self, **overrides: Any) -> AwsScribeConfig:
        values: dict[str, Any] = {
            "endpoint_url": self.endpoint_url,
            "ca_file": self.ca_file,
            "domain_id": TEST_DOMAIN,
            "subscription_id": TEST_SUBSCRIPTION,
            "output_s3_uri": TEST_OUTPUT,
        }
        values.update(overrides)
        return AwsScribeConfig(**values)


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The emulator's test credentials in the standard environment variables only."""
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


@pytest.fixture
async def aws_emulator(tmp_path: Path) -> AsyncIterator[AwsEmulatorHandle]:
    emu = AwsEmulator(AwsEmulatorSettings(tmp_path / "aws-emu", ACCESS_KEY, SECRET_KEY))
    await emu.start()
    handle = AwsEmulatorHandle(emu)
    try:
        yield handle
    finally:
        await handle.emulator.stop()


ClientFactory = Callable[..., AwsScribeClient]


@pytest.fixture
def aws_client(aws_emulator: AwsEmulatorHandle, aws_env: None) -> ClientFactory:
    """`aws_client(service=..., state=..., codec=..., **config)` → a client on the emulator."""

    def make(
        service: str = "aws-healthscribe",
        state: MemoryState | None = None,
        codec: str = "pcm16",
        clock: Callable[[], float] | None = None,
        connect_timeout_s: float = 3.0,
        **cfg: Any,
    ) -> AwsScribeClient:
        profile = PROFILES[service]
        enc = {"pcm16": "pcm", "flac": "flac", "opus": "ogg-opus"}[codec]
        spec = AudioSpec(enc, 16000, 32000 if codec == "pcm16" else None, 2)
        extra = {"clock": clock} if clock is not None else {}
        config = aws_emulator.config(**cfg)
        return AwsScribeClient(
            profile,
            config,
            spec,
            state or MemoryState(),
            CredentialSource(config.profile),
            connect_timeout_s=connect_timeout_s,
            request_timeout_s=5.0,
            **extra,
        )

    return make
