"""Pytest plugin: the AAS emulator, in-process on 127.0.0.1 with free ports and a tmp data dir.

    async def test_x(aas_emulator):            # default settings
        aas_emulator.grpc_target, aas_emulator.http_url, aas_emulator.token_url ...

    async def test_y(make_aas_emulator):        # any EmulatorSettings field
        emu = await make_aas_emulator(token_lifetime_s=2, allowed_client_ids=frozenset({"a"}))

Helpers on the handle wrap the emulator's own HTTP inspection API, so a test sees exactly what a
developer would with curl. `await emu.restart()` stops and starts it on the same ports and data
dir (persistence). For a separate process, run `edge-recorder emulator` instead.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import pytest

from devtools.emulators.aas.app import Emulator
from devtools.emulators.aas.settings import EmulatorSettings
from tests.support.inspect_http import inspect_bytes, inspect_call

# A tenant the tests use: REST and gRPC validate UUIDs, not which ones.
CUSTOMER_ID = "7c9e6679-7425-40de-944b-e07fc1f90ae7"
PARTNER_ID = "0f8fad5b-d9cb-469f-a165-70867728950e"
PRODUCT_ID = "3fa85f64-5717-4562-b3fc-2c963f66afa6"
EXTERNAL_USER_ID = "dr-emulator"


class EmulatorHandle:
    """A running emulator plus thin async helpers over its HTTP endpoints."""

    customer_id = CUSTOMER_ID
    partner_id = PARTNER_ID
    product_id = PRODUCT_ID
    external_user_id = EXTERNAL_USER_ID

    def __init__(self, emulator: Emulator) -> None:
        self.emulator = emulator

    # ---------------------------------------------------------------- addresses
    settings = property(lambda self: self.emulator.settings)
    grpc_target = property(lambda self: self.emulator.grpc_target)
    http_url = property(lambda self: self.emulator.http_url)
    ws_url = property(lambda self: self.emulator.ws_url)
    token_url = property(lambda self: self.emulator.token_url)
    client_id = property(lambda self: self.emulator.settings.client_id)
    client_secret = property(lambda self: self.emulator.settings.client_secret)
    data_dir = property(lambda self: self.emulator.settings.data_dir)
    audience = property(lambda self: self.emulator.settings.audience)

    # ---------------------------------------------------------------- lifecycle
    async def restart(self) -> None:
        """Stop, then start a fresh emulator on the same ports and data dir."""
        old = self.emulator
        await old.stop()
        settings = dataclasses.replace(
            old.settings, grpc_port=old.grpc_port, http_port=old.http_port
        )
        self.emulator = Emulator(settings)
        await self.emulator.start()

    # ---------------------------------------------------------------- HTTP helpers
    async def _call(self, method: str, path: str, json_body: Any = None) -> Any:
        return await inspect_call(self.http_url, method, path, json_body)

    async def sessions(self) -> list[dict[str, Any]]:
        return list((await self._call("GET", "/_emulator/sessions"))["sessions"])

    async def session(self, correlation_id: str) -> dict[str, Any]:
        return dict(await self._call("GET", f"/_emulator/sessions/{correlation_id}"))

    async def recording(self, correlation_id: str, recording_id: str | int) -> dict[str, Any]:
        for rec in (await self.session(correlation_id))["recordings"]:
            if rec["recordingId"] == str(recording_id).lower():
                return dict(rec)
        raise LookupError(f"no recording {recording_id} in {correlation_id}")

    async def recording_bytes(self, correlation_id: str, recording_id: str | int) -> bytes:
        """The stored bytes, through the emulator's raw download endpoint."""
        path = f"/_emulator/sessions/{correlation_id}/recordings/{recording_id}/raw"
        return await inspect_bytes(self.http_url, path)

    async def add_fault(self, **spec: Any) -> dict[str, Any]:
        """kind=fail|latency|drop_stream, target=any|rest|grpc|ws|token, count, status,
        latencyMs, afterBytes, path."""
        return dict(await self._call("POST", "/_emulator/faults", spec))

    async def clear_faults(self) -> None:
        await self._call("DELETE", "/_emulator/faults")

    async def faults(self) -> list[dict[str, Any]]:
        return list((await self._call("GET", "/_emulator/faults"))["faults"])

    async def forget_recording(
        self, correlation_id: str, recording_id: str | int, *, unless_processing: bool = False
    ) -> None:
        """The service loses the recording; with `unless_processing`, only if it was not yet
        handed to processing (else LookupError), decided atomically inside the emulator."""
        spec = {
            "kind": "forget_recording",
            "correlationId": correlation_id,
            "recordingId": str(recording_id),
            "unlessProcessing": unless_processing,
        }
        await self._call("POST", "/_emulator/faults", spec)

    async def mint_token(self, **spec: Any) -> str:
        """clientId, lifetimeS (negative = expired), appOnly, audience."""
        return str((await self._call("POST", "/_emulator/tokens", spec))["access_token"])

    async def fetch_token(self) -> str:
        """A token from the real token endpoint with the dev credentials (HTTP Basic)."""
        basic = base64.b64encode(f"{self.client_id}:{self.client_secret}".encode()).decode()
        headers = {"Authorization": f"Basic {basic}"}
        form = {"grant_type": "client_credentials"}
        async with (
            aiohttp.ClientSession() as http,
            http.post(self.token_url, data=form, headers=headers) as r,
        ):
            r.raise_for_status()
            return str((await r.json())["access_token"])

    async def create_ambient_session(self, correlation_id: str, token: str | None = None) -> None:
        """PUT /ambient-sessions for `correlation_id` with the test tenant."""
        import uuid

        token = token or await self.fetch_token()
        body = {
            "correlationId": correlation_id,
            "productId": PRODUCT_ID,
            "customerId": CUSTOMER_ID,
            "partnerId": PARTNER_ID,
            "externalUserId": EXTERNAL_USER_ID,
        }
        headers = {"Authorization": f"Bearer {token}", "x-correlation-id": str(uuid.uuid4())}
        url = f"{self.http_url}/ambient-sessions?api-version=2&customerId={CUSTOMER_ID}"
        async with (
            aiohttp.ClientSession() as http,
            http.put(url, json=body, headers=headers) as resp,
        ):
            if resp.status not in (200, 201):
                raise LookupError(f"PUT /ambient-sessions: {resp.status} {await resp.text()}")


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


MakeEmulator = Callable[..., Awaitable[EmulatorHandle]]


@pytest.fixture
async def make_aas_emulator(
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[MakeEmulator]:
    """Factory: `await make_aas_emulator(**EmulatorSettings fields)`; all stopped at teardown."""
    handles: list[EmulatorHandle] = []

    async def make(**overrides: Any) -> EmulatorHandle:
        overrides.setdefault("data_dir", tmp_path_factory.mktemp("aas-emulator"))
        overrides.setdefault("host", "127.0.0.1")
        overrides.setdefault("grpc_port", 0)
        overrides.setdefault("http_port", 0)
        emulator = Emulator(EmulatorSettings(**overrides))
        await emulator.start()
        handle = EmulatorHandle(emulator)
        handles.append(handle)
        return handle

    yield make
    for handle in handles:
        await handle.emulator.stop()


@pytest.fixture
async def aas_emulator(make_aas_emulator: MakeEmulator) -> EmulatorHandle:
    """An emulator with default settings (dev client allow-listed, 1 h tokens)."""
    return await make_aas_emulator()
