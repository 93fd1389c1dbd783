"""Token providers against the emulator's real OAuth2 token endpoint."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import jwt
import pytest

from edge_recorder.support.logs import setup_logging
from edge_recorder.uplinks.aas.rest import AasRestClient
from edge_recorder.uplinks.auth import (
    ClientCredentialsProvider,
    StaticTokenProvider,
    token_provider_from_config,
)
from edge_recorder.uplinks.base import ErrorKind, UplinkError
from tests.integration.uplinks.conftest import device_config, new_session
from tests.support.emulator import EmulatorHandle, MakeEmulator


async def test_token_is_cached_and_fetched_once_under_concurrency(
    aas_emulator: EmulatorHandle, tmp_path: Path
) -> None:
    cfg = device_config(aas_emulator, tmp_path)
    tokens = ClientCredentialsProvider.from_config(cfg.auth)
    try:
        got = await asyncio.gather(*(tokens.token() for _ in range(20)))
        again = await tokens.token()
    finally:
        await tokens.aclose()
    assert len(set(got)) == 1 and again == got[0]
    assert tokens.fetch_count == 1
    claims = jwt.decode(got[0], options={"verify_signature": False})
    assert claims["azp"] == aas_emulator.client_id


async def test_refresh_after_rejection_is_single_flight(
    aas_emulator: EmulatorHandle, tmp_path: Path
) -> None:
    cfg = device_config(aas_emulator, tmp_path)
    tokens = ClientCredentialsProvider.from_config(cfg.auth)
    try:
        rejected = await tokens.token()
        fresh = await asyncio.gather(*(tokens.refresh(rejected) for _ in range(10)))
    finally:
        await tokens.aclose()
    assert len(set(fresh)) == 1 and fresh[0] != rejected
    assert tokens.fetch_count == 2  # ten callers saw one 401, the issuer saw one request


async def test_short_lived_token_is_refreshed_at_half_life(
    make_aas_emulator: MakeEmulator, tmp_path: Path
) -> None:
    """A 2 s token with a 60 s margin: reused for its first half, replaced after (fake clock)."""
    emu = await make_aas_emulator(token_lifetime_s=2)
    cfg = device_config(emu, tmp_path, auth={"refresh_margin_s": 60})
    now = [1000.0]
    tokens = ClientCredentialsProvider.from_config(cfg.auth)
    tokens._clock = lambda: now[0]
    try:
        first = await tokens.token()
        now[0] += 0.9
        assert await tokens.token() == first and tokens.fetch_count == 1
        now[0] += 0.2  # past half-life, still before expiry
        second = await tokens.token()
    finally:
        await tokens.aclose()
    assert second != first and tokens.fetch_count == 2


async def test_wrong_secret_is_a_non_retryable_auth_error(
    aas_emulator: EmulatorHandle, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    secret = tmp_path / "wrong"
    secret.write_text("not-the-secret")
    cfg = device_config(aas_emulator, tmp_path, auth={"client_secret_file": str(secret)})
    tokens = ClientCredentialsProvider.from_config(cfg.auth)
    try:
        with pytest.raises(UplinkError) as info:
            await tokens.token()
    finally:
        await tokens.aclose()
    err = info.value
    assert (err.kind, err.transport, err.status, err.retryable) == (
        ErrorKind.AUTH,
        "auth",
        401,
        False,
    )
    assert "invalid_client" in err.message and "not-the-secret" not in str(err)


async def test_missing_secret_names_where_it_looked(
    aas_emulator: EmulatorHandle, tmp_path: Path
) -> None:
    cfg = device_config(
        aas_emulator, tmp_path, auth={"client_secret_file": str(tmp_path / "absent")}
    )
    tokens = token_provider_from_config(cfg.auth)
    with pytest.raises(UplinkError) as info:
        await tokens.token()
    await tokens.aclose()
    assert info.value.kind is ErrorKind.AUTH and not info.value.retryable
    assert "absent" in info.value.message


async def test_token_endpoint_outage_is_retryable(
    aas_emulator: EmulatorHandle, tmp_path: Path
) -> None:
    cfg = device_config(aas_emulator, tmp_path)
    tokens = ClientCredentialsProvider.from_config(cfg.auth)
    await aas_emulator.add_fault(kind="fail", target="token", status=503)
    try:
        with pytest.raises(UplinkError) as info:
            await tokens.token()
        assert await tokens.token()  # the next attempt succeeds
    finally:
        await tokens.aclose()
    assert info.value.kind is ErrorKind.UNAVAILABLE and info.value.retryable


async def test_static_token_file_mode(aas_emulator: EmulatorHandle, tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(await aas_emulator.fetch_token() + "\n")
    cfg = device_config(
        aas_emulator, tmp_path, auth={"mode": "static_token", "token_file": str(token_file)}
    )
    tokens = token_provider_from_config(cfg.auth)
    assert isinstance(tokens, StaticTokenProvider)
    client = AasRestClient.from_config(cfg, tokens)
    try:
        await client.create_session(new_session(aas_emulator))
        token_file.write_text(await aas_emulator.mint_token(lifetimeS=-30))
        await tokens.refresh()  # re-read: now an expired token
        with pytest.raises(UplinkError) as info:
            await client.create_session(new_session(aas_emulator))
    finally:
        await client.aclose()
    assert info.value.kind is ErrorKind.AUTH and info.value.status == 401
    assert "expired" in info.value.message


async def test_tokens_and_secret_never_reach_the_log(
    aas_emulator: EmulatorHandle, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import io

    stream = io.StringIO()
    handler = setup_logging("DEBUG", "logfmt", stream=stream, environ={})
    cfg = device_config(aas_emulator, tmp_path)
    tokens = ClientCredentialsProvider.from_config(cfg.auth)
    client = AasRestClient.from_config(cfg, tokens)
    try:
        await client.create_session(new_session(aas_emulator))
        await aas_emulator.add_fault(kind="fail", target="rest", status=401)
        await client.create_session(new_session(aas_emulator))
        token = await tokens.token()
    finally:
        await client.aclose()
        await tokens.aclose()
        logging.getLogger("edge_recorder").removeHandler(handler)
    text = stream.getvalue()
    assert "access token obtained" in text and "token rejected" in text
    assert token not in text and aas_emulator.client_secret not in text
