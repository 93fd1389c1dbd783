"""A peer that accepts TCP but never answers: every client gives up within its deadline."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge_recorder.uplinks.aas.factory import aas_uplinks
from edge_recorder.uplinks.auth import ClientCredentialsProvider
from edge_recorder.uplinks.base import DataFormat, ErrorKind, RecordingRef, UplinkError
from tests.integration.uplinks.conftest import device_config, new_session
from tests.support.emulator import EmulatorHandle

DEADLINES = {"connect_timeout_s": 0.5, "request_timeout_s": 1.0}


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A listening socket nobody accepts on: the kernel completes the handshake, then silence."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        yield listener.getsockname()[1]


@pytest.mark.parametrize("transport", ["grpc", "websocket", "rest"])
async def test_silent_service_times_out_as_unavailable(
    aas_emulator: EmulatorHandle, tmp_path: Path, silent_port: int, transport: str
) -> None:
    where = f"127.0.0.1:{silent_port}"
    cfg = device_config(
        aas_emulator,
        tmp_path,
        aas={"grpc_target": where, "ws_url": f"ws://{where}", "rest_url": f"http://{where}"},
        uplink={
            **DEADLINES,
            "live_transport": "grpc" if transport == "grpc" else "websocket",
            "retry_initial_s": 0.2,
            "retry_max_s": 0.5,
        },
    )
    uplinks = aas_uplinks(cfg)
    session = new_session(aas_emulator)
    try:
        with pytest.raises(UplinkError) as info:
            if transport == "rest":
                await uplinks.store_forward.create_session(session)
            else:
                await uplinks.live.open_recording(session, RecordingRef.new(1), DataFormat())
    finally:
        await uplinks.aclose()
    # The silent peer never answers, so only the configured deadline can end the call.
    assert info.value.kind is ErrorKind.UNAVAILABLE and info.value.retryable


async def test_silent_token_endpoint_times_out(
    aas_emulator: EmulatorHandle, tmp_path: Path, silent_port: int
) -> None:
    cfg = device_config(
        aas_emulator,
        tmp_path,
        auth={"token_url": f"http://127.0.0.1:{silent_port}/oauth2/token"},
        uplink=DEADLINES,
    )
    tokens = ClientCredentialsProvider.from_config(cfg.auth, timeout_s=0.5)
    try:
        with pytest.raises(UplinkError) as info:
            await tokens.token()
    finally:
        await tokens.aclose()
    assert info.value.kind is ErrorKind.UNAVAILABLE and info.value.transport == "auth"
