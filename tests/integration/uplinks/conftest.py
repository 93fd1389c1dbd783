"""Helpers for the uplink tests: a device Config pointing at the emulator, PCM test audio."""

from __future__ import annotations

import asyncio
import hashlib
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, Protocol, TypeVar

import pytest

from edge_recorder.config.model import Config
from edge_recorder.uplinks.auth import ClientCredentialsProvider
from edge_recorder.uplinks.base import SessionIdentity
from tests.support.emulator import EmulatorHandle

CHUNK_100MS = 3200  # 100 ms of 16 kHz mono PCM16


def device_config(emu: EmulatorHandle, tmp_path: Path, **sections: dict[str, Any]) -> Config:
    """The config a device pointed at `emu` would load (secret in a file, plain loopback)."""
    secret = tmp_path / f"client-secret-{uuid.uuid4().hex[:6]}"
    secret.write_text(emu.client_secret + "\n")
    data: dict[str, Any] = {
        "auth": {
            "mode": "client_credentials",
            "token_url": emu.token_url,
            "client_id": emu.client_id,
            "client_secret_file": str(secret),
        },
        "aas": {
            "grpc_target": emu.grpc_target,
            "rest_url": emu.http_url,
            "ws_url": emu.ws_url,
            "tls": False,
            "customer_id": emu.customer_id,
            "partner_id": emu.partner_id,
            "product_id": emu.product_id,
            "external_user_id": emu.external_user_id,
        },
        "uplink": {"request_timeout_s": 5.0, "connect_timeout_s": 2.0},
    }
    for name, values in sections.items():
        data.setdefault(name, {}).update(values)
    return Config.model_validate(data)


def new_session(emu: EmulatorHandle, **overrides: Any) -> SessionIdentity:
    fields: dict[str, Any] = {
        "correlation_id": f"enc-{uuid.uuid4().hex[:12]}",
        "customer_id": emu.customer_id,
        "partner_id": emu.partner_id,
        "product_id": emu.product_id,
        "external_user_id": emu.external_user_id,
    }
    fields.update(overrides)
    return SessionIdentity(**fields)


def pcm_audio(n_bytes: int, seed: int = 1) -> bytes:
    """Deterministic, non-repeating bytes (so a misplaced chunk changes the hash)."""
    out = bytearray()
    counter = 0
    while len(out) < n_bytes:
        out += hashlib.sha256(f"{seed}:{counter}".encode()).digest()
        counter += 1
    return bytes(out[:n_bytes])


def chunks(data: bytes, start: int = 0, size: int = CHUNK_100MS) -> list[tuple[int, bytes]]:
    return [(o, data[o : o + size]) for o in range(start, len(data), size)]


async def wait_until(
    predicate: Callable[[], bool | Awaitable[bool]], timeout_s: float = 10.0, step_s: float = 0.02
) -> None:
    """Poll `predicate` until true or fail at the deadline (never a bare sleep)."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = predicate()
        if not isinstance(result, bool):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout_s}s")
        await asyncio.sleep(step_s)


@pytest.fixture
def tokens_for(tmp_path: Path) -> Callable[..., ClientCredentialsProvider]:
    """Build a provider for an emulator (closed by the test's own `aclose`)."""

    def make(emu: EmulatorHandle, **auth: Any) -> ClientCredentialsProvider:
        cfg = device_config(emu, tmp_path, auth=auth)
        return ClientCredentialsProvider.from_config(cfg.auth)

    return make


class _FromConfig(Protocol):
    @classmethod
    def from_config(cls, config: Config, tokens: ClientCredentialsProvider) -> Any: ...

    async def aclose(self) -> None: ...


ClientT = TypeVar("ClientT", bound=_FromConfig)


async def client_factory(
    cls: type[ClientT], tmp_path: Path
) -> AsyncIterator[Callable[..., tuple[ClientT, ClientCredentialsProvider]]]:
    """Yields `make(emu, **sections)` → (client of `cls` built from the device config, its
    token provider); closes every pair made when the test ends."""
    made: list[tuple[ClientT, ClientCredentialsProvider]] = []

    def make(emu: EmulatorHandle, **sections: Any) -> tuple[ClientT, ClientCredentialsProvider]:
        cfg = device_config(emu, tmp_path, **sections)
        tokens = ClientCredentialsProvider.from_config(cfg.auth)
        pair = (cls.from_config(cfg, tokens), tokens)
        made.append(pair)
        return pair

    yield make
    for client, tokens in made:
        await client.aclose()
        await tokens.aclose()
