"""Errors by kind (RFC 9457 bodies → UplinkError), auth (token per tenant realm, Tenant-Name,
one refresh on 401), and the emulator's own validation of uploads."""

from __future__ import annotations

from pathlib import Path

import aiohttp
import pytest

from edge_recorder.delivery.state import DeliveryState
from edge_recorder.uplinks.base import ErrorKind, UplinkError
from edge_recorder.uplinks.bundle import Uplinks
from edge_recorder.uplinks.corti.factory import corti_uplinks
from edge_recorder.uplinks.corti.parts import wav_header
from tests.support.corti_emulator import CortiHandle, MakeCorti

ENC = "enc-errors"


async def _create(up: Uplinks) -> None:
    await up.store_forward.create_session(up.identity(ENC))


@pytest.mark.parametrize(
    ("status", "kind", "retryable"),
    [
        (400, ErrorKind.INVALID, False),
        (403, ErrorKind.FORBIDDEN, False),
        (404, ErrorKind.NOT_FOUND, False),
        (429, ErrorKind.THROTTLED, True),
        (500, ErrorKind.SERVER, True),
        (503, ErrorKind.UNAVAILABLE, True),
        (504, ErrorKind.UNAVAILABLE, True),
    ],
)
async def test_error_statuses_become_kinds_with_the_servers_detail(
    uplinks: Uplinks, corti_emulator: CortiHandle, status: int, kind: ErrorKind, retryable: bool
) -> None:
    await corti_emulator.add_fault(kind="fail", target="rest", status=status, path="/interactions/")
    with pytest.raises(UplinkError) as caught:
        await _create(uplinks)
    err = caught.value
    assert (err.kind, err.status, err.retryable) == (kind, status, retryable)
    assert f"injected fault (HTTP {status})" in err.message and "requestid" in err.message


async def test_validation_errors_are_in_the_message(
    uplinks: Uplinks, corti_emulator: CortiHandle, state: DeliveryState
) -> None:
    await _create(uplinks)
    await uplinks.store_forward.upload_recording(
        uplinks.identity(ENC), 1, 3200, lambda s, e: _zeros(e - s)
    )
    iid = state.get(f"corti:{ENC}:interaction") or ""
    rest = uplinks.store_forward.rest  # type: ignore[attr-defined]
    with pytest.raises(UplinkError) as caught:
        await rest.create_document(iid, {"templateKey": "nope", "context": []})
    assert caught.value.kind is ErrorKind.INVALID
    assert "templateKey: unknown template 'nope'" in caught.value.message
    assert "context: needs a transcript entry" in caught.value.message


async def _zeros(n: int) -> bytes:
    return bytes(n)


async def test_the_service_size_limit_is_a_clear_invalid_error(
    make_corti_emulator: MakeCorti, tmp_path: Path, state: DeliveryState
) -> None:
    emu = await make_corti_emulator(max_upload_bytes=10_000)
    up = corti_uplinks(emu.config(tmp_path), state)  # the device believes in 150 MB
    try:
        await _create(up)
        with pytest.raises(UplinkError) as caught:
            await up.store_forward.upload_recording(
                up.identity(ENC), 1, 20_000, lambda s, e: _zeros(e - s)
            )
    finally:
        await up.aclose()
    assert caught.value.kind is ErrorKind.INVALID and caught.value.status == 413
    assert "the limit is 10000" in caught.value.message


async def test_tokens_come_from_the_tenant_realm_and_are_cached(
    uplinks: Uplinks, corti_emulator: CortiHandle
) -> None:
    await uplinks.check_auth()
    await _create(uplinks)
    await uplinks.live.retrieve_configuration(uplinks.identity(ENC))
    assert (await corti_emulator.info())["tokensIssued"] == 1


async def test_a_rejected_token_is_refreshed_once(
    uplinks: Uplinks, corti_emulator: CortiHandle
) -> None:
    await uplinks.check_auth()
    (corti_emulator.settings.data_dir / "issuer.key").unlink()  # the issuer rotates its key
    await corti_emulator.restart()
    await _create(uplinks)  # 401 → one refresh → success
    assert (await corti_emulator.info())["tokensIssued"] == 1  # counted since the restart
    assert len(await corti_emulator.sessions()) == 1


async def test_a_wrong_secret_is_an_auth_error(
    corti_emulator: CortiHandle, tmp_path: Path, state: DeliveryState
) -> None:
    config = corti_emulator.config(tmp_path)
    (tmp_path / "corti-secret").write_text("wrong\n")
    up = corti_uplinks(config, state)
    try:
        with pytest.raises(UplinkError) as caught:
            await _create(up)
    finally:
        await up.aclose()
    assert caught.value.kind is ErrorKind.AUTH and caught.value.transport == "auth"
    assert "invalid_client" in caught.value.message and "wrong" not in caught.value.message


async def test_an_unknown_tenant_is_refused(
    corti_emulator: CortiHandle, tmp_path: Path, state: DeliveryState
) -> None:
    config = corti_emulator.config(tmp_path)
    config.corti.tenant = "other-hospital"
    up = corti_uplinks(config, state)
    try:
        with pytest.raises(UplinkError) as caught:
            await _create(up)
    finally:
        await up.aclose()
    assert caught.value.kind is ErrorKind.NOT_FOUND and caught.value.transport == "auth"


async def test_every_api_call_needs_tenant_name_and_a_token(corti_emulator: CortiHandle) -> None:
    token = await corti_emulator.mint_token()
    url = corti_emulator.api_url + "/templates/"
    async with aiohttp.ClientSession() as http:
        async with http.get(url, headers={"Authorization": f"Bearer {token}"}) as resp:
            assert resp.status == 401
            body = await resp.json(content_type=None)
            assert set(body) >= {"requestid", "status", "type", "detail"}
            assert resp.content_type == "application/problem+json"
        async with http.get(url, headers={"Tenant-Name": corti_emulator.tenant}) as resp:
            assert resp.status == 401
        expired = await corti_emulator.mint_token(lifetimeS=-5)
        headers = {"Tenant-Name": corti_emulator.tenant, "Authorization": f"Bearer {expired}"}
        async with http.get(url, headers=headers) as resp:
            assert resp.status == 401 and "expired" in (await resp.json())["detail"]
        headers["Authorization"] = f"Bearer {token}"
        async with http.get(url, headers=headers) as resp:
            assert resp.status == 200
            assert {t["key"] for t in (await resp.json())["data"]} >= {"corti-soap"}


async def test_the_emulator_validates_uploads(corti_emulator: CortiHandle) -> None:
    token = await corti_emulator.mint_token()
    headers = {"Tenant-Name": corti_emulator.tenant, "Authorization": f"Bearer {token}"}
    async with aiohttp.ClientSession(headers=headers) as http:
        body = {"encounter": {"identifier": "x", "status": "in-progress", "type": "consultation"}}
        async with http.post(corti_emulator.api_url + "/interactions/", json=body) as resp:
            assert resp.status == 201
            iid = (await resp.json())["interactionId"]
        url = f"{corti_emulator.api_url}/interactions/{iid}/recordings/"
        octet = {"Content-Type": "application/octet-stream"}
        cases = [
            (b"RIFF" + bytes(40), {"Content-Type": "audio/wav"}, 415, "octet-stream"),
            (b"hello world", octet, 400, "WAV or FLAC"),
            (wav_header(1000, 16000, 1) + bytes(10), octet, 400, "RIFF size 1036 disagrees"),
            (b"", octet, 400, "empty"),
        ]
        for data, extra, status, words in cases:
            async with http.post(url, data=data, headers=extra) as resp:
                assert resp.status == status, (data[:8], await resp.text())
                assert words in (await resp.json(content_type=None))["detail"]
        bad = {"encounter": {"identifier": "x", "status": "open", "type": "visit"}}
        async with http.post(corti_emulator.api_url + "/interactions/", json=bad) as resp:
            problem = await resp.json(content_type=None)
            assert resp.status == 400
            assert {e["key"] for e in problem["validationErrors"]} == {
                "encounter.status",
                "encounter.type",
            }


async def test_the_duration_limit_is_checked(make_corti_emulator: MakeCorti) -> None:
    emu = await make_corti_emulator(max_upload_s=1.0)
    token = await emu.mint_token()
    headers = {"Tenant-Name": emu.tenant, "Authorization": f"Bearer {token}"}
    async with aiohttp.ClientSession(headers=headers) as http:
        body = {"encounter": {"identifier": "y", "status": "in-progress", "type": "emergency"}}
        async with http.post(emu.api_url + "/interactions/", json=body) as resp:
            iid = (await resp.json())["interactionId"]
        url = f"{emu.api_url}/interactions/{iid}/recordings/"
        octet = {"Content-Type": "application/octet-stream"}
        for seconds, status in ((1.5, 400), (1.0, 200)):
            audio = bytes(int(32000 * seconds))
            async with http.post(
                url, data=wav_header(len(audio), 16000, 1) + audio, headers=octet
            ) as resp:
                assert resp.status == status
    assert len((await emu.session(iid))["recordings"]) == 1
