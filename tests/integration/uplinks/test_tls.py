"""TLS and mutual TLS for every transport, through a real TLS proxy in front of the emulator."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from edge_recorder.config.model import Config
from edge_recorder.uplinks.aas.grpc_stream import AasGrpcClient
from edge_recorder.uplinks.aas.rest import AasRestClient
from edge_recorder.uplinks.aas.websocket import AasWebSocketClient
from edge_recorder.uplinks.auth import ClientCredentialsProvider
from edge_recorder.uplinks.base import DataFormat, ErrorKind, RecordingRef, UplinkError
from tests.integration.uplinks.conftest import device_config, new_session, pcm_audio
from tests.integration.uplinks.tls import TlsProxy, server_context
from tests.support.emulator import EmulatorHandle
from tests.support.pki import Pki, make_pki


class TlsFront:
    """Three TLS fronts: token endpoint (server auth only), HTTP and gRPC (mutual TLS)."""

    def __init__(self, emu: EmulatorHandle, pki: Pki) -> None:
        http = urlsplit(emu.http_url)
        grpc_host, grpc_port = emu.grpc_target.rsplit(":", 1)
        upstream_http = (str(http.hostname), int(http.port or 80))
        self.token = TlsProxy(upstream_http, server_context(pki, require_client_cert=False))
        self.http = TlsProxy(upstream_http, server_context(pki, require_client_cert=True))
        self.grpc = TlsProxy((grpc_host, int(grpc_port)), server_context(pki, True))

    async def start(self) -> None:
        for proxy in (self.token, self.http, self.grpc):
            await proxy.start()

    async def close(self) -> None:
        for proxy in (self.token, self.http, self.grpc):
            await proxy.close()

    def config(self, emu: EmulatorHandle, tmp_path: Path, ca: Path, **aas: Any) -> Config:
        base = {
            "tls": True,
            "grpc_target": f"127.0.0.1:{self.grpc.port}",
            "rest_url": f"https://127.0.0.1:{self.http.port}",
            "ws_url": f"wss://127.0.0.1:{self.http.port}",
            "ca_file": str(ca),
        }
        base.update(aas)
        return device_config(
            emu,
            tmp_path,
            aas=base,
            auth={
                "token_url": f"https://127.0.0.1:{self.token.port}/oauth2/token",
                "ca_file": str(ca),
            },
        )


@pytest.fixture
async def front(
    aas_emulator: EmulatorHandle, tmp_path: Path
) -> AsyncIterator[tuple[TlsFront, Pki]]:
    pki = make_pki(tmp_path / "pki")
    tls = TlsFront(aas_emulator, pki)
    await tls.start()
    yield tls, pki
    await tls.close()


async def test_mutual_tls_on_every_transport(
    aas_emulator: EmulatorHandle, front: tuple[TlsFront, Pki], tmp_path: Path
) -> None:
    tls, pki = front
    cfg = tls.config(
        aas_emulator,
        tmp_path,
        pki.ca_file,
        client_cert_file=str(pki.client_cert),
        client_key_file=str(pki.client_key),
    )
    tokens = ClientCredentialsProvider.from_config(cfg.auth)
    rest = AasRestClient.from_config(cfg, tokens)
    grpc_client = AasGrpcClient.from_config(cfg, tokens)
    ws = AasWebSocketClient.from_config(cfg, tokens)
    session = new_session(aas_emulator)
    audio = pcm_audio(6400)
    try:
        await rest.create_session(session)
        rec = await grpc_client.open_recording(session, RecordingRef.new(1), DataFormat())
        await rec.send(0, audio)
        assert await rec.close() == len(audio)
        conf = await ws.retrieve_configuration(session)
        assert conf.max_chunk_bytes
    finally:
        for closable in (rest, grpc_client, ws, tokens):
            await closable.aclose()
    stored = await aas_emulator.recording(session.correlation_id, rec.recording.guid)
    assert stored["bytes"] == len(audio)


async def test_untrusted_server_certificate_is_refused(
    aas_emulator: EmulatorHandle, front: tuple[TlsFront, Pki], tmp_path: Path
) -> None:
    tls, pki = front
    other = make_pki(tmp_path / "other", tag="other")
    cfg = tls.config(
        aas_emulator,
        tmp_path,
        other.ca_file,
        client_cert_file=str(pki.client_cert),
        client_key_file=str(pki.client_key),
    )
    tokens = ClientCredentialsProvider.from_config(cfg.auth)
    with pytest.raises(UplinkError) as info:
        await tokens.token()
    assert info.value.kind is ErrorKind.UNAVAILABLE and info.value.transport == "auth"

    good = tls.config(aas_emulator, tmp_path, pki.ca_file)
    good_tokens = ClientCredentialsProvider.from_config(good.auth)
    rest = AasRestClient.from_config(cfg, good_tokens)  # service verified with the wrong CA
    grpc_client = AasGrpcClient.from_config(cfg, good_tokens)
    try:
        with pytest.raises(UplinkError) as rest_info:
            await rest.create_session(new_session(aas_emulator))
        with pytest.raises(UplinkError) as grpc_info:
            await grpc_client.retrieve_configuration(new_session(aas_emulator))
    finally:
        for closable in (rest, grpc_client, good_tokens, tokens):
            await closable.aclose()
    assert rest_info.value.kind is ErrorKind.UNAVAILABLE and "TLS" in rest_info.value.message
    assert grpc_info.value.kind is ErrorKind.UNAVAILABLE and grpc_info.value.retryable


async def test_missing_client_certificate_is_refused(
    aas_emulator: EmulatorHandle, front: tuple[TlsFront, Pki], tmp_path: Path
) -> None:
    tls, pki = front
    cfg = tls.config(aas_emulator, tmp_path, pki.ca_file)  # no client certificate
    tokens = ClientCredentialsProvider.from_config(cfg.auth)
    rest = AasRestClient.from_config(cfg, tokens)
    try:
        assert await tokens.token()  # the token endpoint does not ask for one
        with pytest.raises(UplinkError) as info:
            await rest.create_session(new_session(aas_emulator))
    finally:
        await rest.aclose()
        await tokens.aclose()
    assert info.value.kind is ErrorKind.UNAVAILABLE and info.value.retryable
