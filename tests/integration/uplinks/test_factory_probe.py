"""The uplink factory and the `check --probe` rows against the emulator."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge_recorder.uplinks.aas.factory import aas_uplinks
from edge_recorder.uplinks.aas.grpc_stream import AasGrpcClient
from edge_recorder.uplinks.aas.probe import probe_aas_async
from edge_recorder.uplinks.aas.rest import AasRestClient
from edge_recorder.uplinks.aas.websocket import AasWebSocketClient
from edge_recorder.uplinks.base import DataFormat, RecordingRef
from tests.integration.uplinks.conftest import device_config, new_session
from tests.support.emulator import EmulatorHandle


@pytest.mark.parametrize("transport", ["grpc", "websocket"])
async def test_factory_builds_a_working_live_transport(
    aas_emulator: EmulatorHandle, tmp_path: Path, transport: str
) -> None:
    cfg = device_config(aas_emulator, tmp_path, uplink={"live_transport": transport})
    uplinks = aas_uplinks(cfg)
    expected = AasGrpcClient if transport == "grpc" else AasWebSocketClient
    assert isinstance(uplinks.live, expected)
    assert isinstance(uplinks.store_forward, AasRestClient)
    session = new_session(aas_emulator)
    try:
        live = await uplinks.live.open_recording(session, RecordingRef.new(1), DataFormat())
        await live.send(0, b"\x00\x01" * 100)
        assert await live.close() == 200
    finally:
        await uplinks.aclose()


def test_factory_refuses_plain_urls_when_tls_is_on(
    aas_emulator: EmulatorHandle, tmp_path: Path
) -> None:
    cfg = device_config(aas_emulator, tmp_path, aas={"tls": True})
    with pytest.raises(ValueError, match="https"):
        aas_uplinks(cfg)


async def test_probe_reports_each_endpoint(aas_emulator: EmulatorHandle, tmp_path: Path) -> None:
    rows = await probe_aas_async(device_config(aas_emulator, tmp_path))
    assert [(r.name, r.status) for r in rows] == [
        ("aas-token", "ok"),
        ("aas-grpc", "ok"),
        ("aas-rest", "ok"),
    ]
    assert "max 5400" in rows[1].detail


async def test_probe_reports_a_wrong_secret(aas_emulator: EmulatorHandle, tmp_path: Path) -> None:
    bad = tmp_path / "bad"
    bad.write_text("nope")
    cfg = device_config(aas_emulator, tmp_path, auth={"client_secret_file": str(bad)})
    rows = await probe_aas_async(cfg)
    assert [(r.name, r.status) for r in rows] == [("aas-token", "fail")]
    assert "invalid_client" in rows[0].detail and "nope" not in rows[0].detail
