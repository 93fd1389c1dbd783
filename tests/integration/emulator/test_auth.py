"""The development issuer: discovery, JWKS, client-credentials token endpoint, expiry."""

from __future__ import annotations

import asyncio
import base64
import time

import jwt
import pytest

from tests.integration.emulator.conftest import finalize_body, rest_headers

FORM = {"grant_type": "client_credentials"}


def basic(client_id: str, secret: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()}


async def test_discovery_and_jwks_verify_an_issued_token(aas_emulator, http, token) -> None:
    async with http.get(aas_emulator.http_url + "/.well-known/openid-configuration") as resp:
        meta = await resp.json()
    assert meta["issuer"] == aas_emulator.http_url
    assert meta["token_endpoint"] == aas_emulator.token_url
    assert "client_credentials" in meta["grant_types_supported"]
    async with http.get(meta["jwks_uri"]) as resp:
        jwks = await resp.json()
    key = jwt.PyJWKSet.from_dict(jwks)[jwt.get_unverified_header(token)["kid"]]
    claims = jwt.decode(
        token, key.key, algorithms=["RS256"], audience=aas_emulator.audience, issuer=meta["issuer"]
    )
    assert claims["azp"] == aas_emulator.client_id
    assert claims["idtyp"] == "app"
    assert 3500 < claims["exp"] - time.time() <= 3600


async def test_token_with_body_credentials(aas_emulator, http) -> None:
    form = {
        **FORM,
        "client_id": aas_emulator.client_id,
        "client_secret": aas_emulator.client_secret,
    }
    async with http.post(aas_emulator.token_url, data=form) as resp:
        assert resp.status == 200
        assert resp.headers["Cache-Control"] == "no-store"
        body = await resp.json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 3600


@pytest.mark.parametrize(
    ("form", "headers", "status", "error"),
    [
        ({"grant_type": "password"}, "good", 400, "unsupported_grant_type"),
        (FORM, "bad", 401, "invalid_client"),
        (FORM, None, 401, "invalid_client"),
        ({**FORM, "client_secret": "x"}, "good", 400, "invalid_request"),
        ({**FORM, "audience": "api://other"}, "good", 400, "invalid_target"),
    ],
)
async def test_token_endpoint_errors(aas_emulator, http, form, headers, status, error) -> None:
    hdrs = {
        "good": basic(aas_emulator.client_id, aas_emulator.client_secret),
        "bad": basic(aas_emulator.client_id, "wrong"),
        None: {},
    }[headers]
    async with http.post(aas_emulator.token_url, data=form, headers=hdrs) as resp:
        assert resp.status == status
        assert (await resp.json())["error"] == error


async def test_json_body_is_refused(aas_emulator, http) -> None:
    async with http.post(aas_emulator.token_url, json=FORM) as resp:
        assert resp.status == 400
        assert (await resp.json())["error"] == "invalid_request"


async def test_short_lifetime_tokens_expire(make_aas_emulator, http) -> None:
    emu = await make_aas_emulator(token_lifetime_s=1)
    async with http.post(
        emu.token_url, data=FORM, headers=basic(emu.client_id, emu.client_secret)
    ) as resp:
        body = await resp.json()
    assert body["expires_in"] == 1
    token = body["access_token"]
    url = emu.http_url + "/audio/finalizeUpload?api-version=2025-07-15"
    payload = finalize_body("c", 1, 1, skipAmbientSessionExistence=True)
    async with http.post(url, json=payload, headers=rest_headers(token)) as resp:
        assert resp.status == 200
    exp = jwt.decode(token, options={"verify_signature": False})["exp"]
    deadline = time.monotonic() + 10
    status = 200
    while status == 200 and time.monotonic() < deadline:  # poll until the token lapses
        async with http.post(url, json=payload, headers=rest_headers(token)) as resp:
            status = resp.status
        if status == 200:
            await asyncio.sleep(0.1)  # polling interval while waiting for the clock
    assert status == 401
    assert time.time() >= exp


async def test_custom_client_and_allow_list(make_aas_emulator, http) -> None:
    emu = await make_aas_emulator(
        client_id="dev-a",
        client_secret="s3cret",
        extra_clients={"dev-b": "b-secret"},
        allowed_client_ids=frozenset({"dev-a", "dev-b"}),
    )
    for client_id, secret in (("dev-a", "s3cret"), ("dev-b", "b-secret")):
        async with http.post(emu.token_url, data=FORM, headers=basic(client_id, secret)) as resp:
            token = (await resp.json())["access_token"]
        url = emu.http_url + "/audio/finalizeUpload?api-version=2025-07-15"
        payload = finalize_body("c", 1, 1, skipAmbientSessionExistence=True)
        async with http.post(url, json=payload, headers=rest_headers(token)) as resp:
            assert resp.status == 200, client_id


async def test_signing_key_survives_restart(aas_emulator, http, token) -> None:
    key_file = aas_emulator.data_dir / "issuer" / "signing-key.pem"
    assert key_file.stat().st_mode & 0o777 == 0o600
    await aas_emulator.restart()
    url = aas_emulator.http_url + "/audio/finalizeUpload?api-version=2025-07-15"
    payload = finalize_body("c", 1, 1, skipAmbientSessionExistence=True)
    async with http.post(url, json=payload, headers=rest_headers(token)) as resp:
        assert resp.status == 200
