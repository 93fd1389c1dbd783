"""REST front against the finalize seed: headers, auth, validation, 404, chunk reconciliation."""

from __future__ import annotations

import wave

import pytest

from tests.integration.emulator.conftest import (
    AUDIO_QS,
    chunk_form,
    chunk_metadata,
    finalize_body,
    rest_headers,
)
from tests.support.emulator import CUSTOMER_ID, PRODUCT_ID

FINALIZE = "/audio/finalizeUpload" + AUDIO_QS
STORE = "/audio/storeChunk" + AUDIO_QS


async def finalize(http, emu, token, body):
    async with http.post(emu.http_url + FINALIZE, json=body, headers=rest_headers(token)) as r:
        return r.status, await r.json()


async def store(http, emu, token, meta, content):
    url = emu.http_url + STORE
    async with http.put(url, data=chunk_form(meta, content), headers=rest_headers(token)) as r:
        return r.status, await r.json()


async def test_missing_trace_header_gives_the_exact_seed_body(aas_emulator, http, token) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    url = aas_emulator.http_url + FINALIZE
    async with http.post(url, json=finalize_body("c", 1, 1), headers=headers) as resp:
        assert resp.status == 400
        assert await resp.read() == b'{"error": "x-correlation-id header is required"}'


@pytest.mark.parametrize("auth", [None, "Bearer", "Bearer not-a-jwt", "Basic dXNlcjpwdw=="])
async def test_missing_or_malformed_token_is_plain_text_401(aas_emulator, http, auth) -> None:
    headers = rest_headers(None)
    if auth is not None:
        headers["Authorization"] = auth
    url = aas_emulator.http_url + FINALIZE
    async with http.post(url, json=finalize_body("c", 1, 1), headers=headers) as resp:
        assert resp.status == 401
        assert resp.content_type == "text/plain"
        assert "WWW-Authenticate" in resp.headers


async def test_expired_token_is_401_with_invalid_token_challenge(aas_emulator, http) -> None:
    expired = await aas_emulator.mint_token(lifetimeS=-60)
    url = aas_emulator.http_url + FINALIZE
    async with http.post(url, json=finalize_body("c", 1, 1), headers=rest_headers(expired)) as resp:
        assert resp.status == 401
        assert resp.content_type == "text/plain"
        assert "expired" in await resp.text()
        assert 'error="invalid_token"' in resp.headers["WWW-Authenticate"]


async def test_token_for_another_audience_is_401(aas_emulator, http) -> None:
    foreign = await aas_emulator.mint_token(audience="api://something-else")
    url = aas_emulator.http_url + FINALIZE
    async with http.post(url, json={}, headers=rest_headers(foreign)) as resp:
        assert resp.status == 401
        assert "audience" in (await resp.text()).lower()


@pytest.mark.parametrize("status", [403, 401])
async def test_valid_token_of_a_client_not_allow_listed_is_json(make_aas_emulator, http, status):
    emu = await make_aas_emulator(
        extra_clients={"stranger": "stranger-secret"}, not_allowlisted_status=status
    )
    async with http.post(
        emu.token_url,
        data={
            "grant_type": "client_credentials",
            "client_id": "stranger",
            "client_secret": "stranger-secret",
        },
    ) as resp:
        assert resp.status == 200
        stranger = (await resp.json())["access_token"]
    code, body = await finalize(http, emu, stranger, finalize_body("c", 1, 1))
    assert code == status
    assert "allow list" in body["error"]


async def test_finalize_validation_errors_are_concatenated(aas_emulator, http, token) -> None:
    code, body = await finalize(http, aas_emulator, token, {"recordingId": -1, "totalChunks": 0})
    assert code == 400
    assert body["error"] == (
        "productId is required (valid UUID); partnerId is required (valid UUID); "
        "customerId is required (valid UUID); correlationId is required (non-empty string); "
        "recordingId must be a positive integer (> 0); totalChunks must be a positive integer "
        "(> 0)"
    )


async def test_single_validation_error(aas_emulator, http, token) -> None:
    code, body = await finalize(
        http, aas_emulator, token, finalize_body("c", 1, 1, productId="nope")
    )
    assert (code, body) == (400, {"error": "productId is required (valid UUID)"})


async def test_wrong_api_version_is_400(aas_emulator, http, token) -> None:
    url = aas_emulator.http_url + "/audio/finalizeUpload?api-version=2024-01-01"
    async with http.post(url, json=finalize_body("c", 1, 1), headers=rest_headers(token)) as r:
        assert r.status == 400
        assert r.headers["api-supported-versions"] == "2025-07-15"


async def test_unknown_session_404_unless_skipped(aas_emulator, http, token) -> None:
    code, body = await finalize(http, aas_emulator, token, finalize_body("nobody", 1, 1))
    assert code == 404
    assert "nobody" in body["error"]
    skipped = finalize_body("nobody", 1, 1, skipAmbientSessionExistence=True)
    assert await finalize(http, aas_emulator, token, skipped) == (200, {"error": None})


async def test_chunks_and_finalize_in_any_order(aas_emulator, http, token) -> None:
    cid = "enc-any-order"
    await aas_emulator.create_ambient_session(cid, token)
    audio = {2: b"\x01\x00" * 300, 3: b"\x02\x00" * 300, 4: b"\x03\x00" * 100}
    assert await store(http, aas_emulator, token, chunk_metadata(cid, 1, 3), audio[3]) == (
        200,
        {"error": None},
    )
    assert (await store(http, aas_emulator, token, chunk_metadata(cid, 1, 1), None))[0] == 200
    # finalize before the last chunks: accepted, recording waits
    assert await finalize(http, aas_emulator, token, finalize_body(cid, 1, 4)) == (
        200,
        {"error": None},
    )
    rec = await aas_emulator.recording(cid, 1)
    assert rec["state"] == "closed"
    assert rec["missingChunks"] == [2, 4]
    meta4 = chunk_metadata(cid, 1, 4, isLast=True)
    assert (await store(http, aas_emulator, token, meta4, audio[4]))[0] == 200
    assert (await store(http, aas_emulator, token, chunk_metadata(cid, 1, 2), audio[2]))[0] == 200
    rec = await aas_emulator.recording(cid, 1)
    assert rec["state"] == "finalized"
    assert rec["processingStarted"] is True
    expected = audio[2] + audio[3] + audio[4]
    assert await aas_emulator.recording_bytes(cid, 1) == expected
    assert rec["bytes"] == len(expected)
    with wave.open(rec["file"], "rb") as wav:
        assert (wav.getframerate(), wav.getnchannels(), wav.getsampwidth()) == (16000, 1, 2)
        assert wav.readframes(10_000) == expected


async def test_total_chunks_disagreeing_with_arrivals(aas_emulator, http, token) -> None:
    cid = "enc-mismatch"
    await aas_emulator.create_ambient_session(cid, token)
    for chunk_id in (1, 2, 3, 4):
        meta = chunk_metadata(cid, 1, chunk_id)
        assert (await store(http, aas_emulator, token, meta, b"ab" * chunk_id))[0] == 200
    code, body = await finalize(http, aas_emulator, token, finalize_body(cid, 1, 3))
    assert code == 400
    assert body["error"] == (
        "totalChunks 3 disagrees with the chunks received: chunk 4 was uploaded"
    )
    # a declared total then refuses a chunk beyond it
    assert (await finalize(http, aas_emulator, token, finalize_body(cid, 2, 2)))[0] == 200
    code, body = await store(http, aas_emulator, token, chunk_metadata(cid, 2, 3), b"xx")
    assert code == 400
    assert "beyond totalChunks 2" in body["error"]
    # isLast on chunk 2 contradicts a later finalize of 5
    meta = chunk_metadata(cid, 3, 2, isLast=True)
    assert (await store(http, aas_emulator, token, meta, b"zz"))[0] == 200
    code, body = await finalize(http, aas_emulator, token, finalize_body(cid, 3, 5))
    assert code == 400
    assert "chunk 2 was marked isLast" in body["error"]


async def test_resent_chunk_is_idempotent_but_changed_bytes_conflict(
    aas_emulator, http, token
) -> None:
    cid = "enc-dup"
    await aas_emulator.create_ambient_session(cid, token)
    meta = chunk_metadata(cid, 1, 2)
    assert (await store(http, aas_emulator, token, meta, b"same"))[0] == 200
    assert (await store(http, aas_emulator, token, meta, b"same"))[0] == 200
    code, body = await store(http, aas_emulator, token, meta, b"diff")
    assert code == 409
    assert "different content" in body["error"]


async def test_store_chunk_shape_errors(aas_emulator, http, token) -> None:
    cid = "enc-shape"
    await aas_emulator.create_ambient_session(cid, token)
    code, body = await store(http, aas_emulator, token, chunk_metadata(cid, 1, 2), None)
    assert code == 400
    assert "content" in body["error"]
    code, body = await store(http, aas_emulator, token, {"chunkId": 0}, b"x")
    assert code == 400
    assert body["error"].count(";") >= 4  # several errors, one string
    url = aas_emulator.http_url + STORE
    async with http.put(url, json={"x": 1}, headers=rest_headers(token)) as resp:
        assert resp.status == 400
        assert "multipart/form-data" in (await resp.json())["error"]
    code, body = await store(http, aas_emulator, token, chunk_metadata("ghost", 1, 1), None)
    assert code == 404


async def test_put_ambient_session(aas_emulator, http, token) -> None:
    url = aas_emulator.http_url + f"/ambient-sessions?api-version=2&customerId={CUSTOMER_ID}"
    body = {
        "correlationId": "enc|put_1",
        "productId": PRODUCT_ID,
        "customerId": CUSTOMER_ID,
        "externalUserId": "dr-x",
        "data": '{"room": "3"}',
    }
    async with http.put(url, json=body, headers=rest_headers(token)) as resp:
        assert resp.status == 201
        assert (await resp.json())["correlationId"] == "enc|put_1"
    async with http.put(url, json=body, headers=rest_headers(token)) as resp:
        assert resp.status == 200
    bad = {"correlationId": "has space", "productId": "x", "customerId": CUSTOMER_ID}
    async with http.put(url, json=bad, headers=rest_headers(token)) as resp:
        assert resp.status == 400
        error = (await resp.json())["error"]
        assert "correlationId" in error and "productId" in error and "externalUserId" in error
    session = await aas_emulator.session("enc|put_1")
    assert session["createdVia"] == "rest"
    assert session["externalUserId"] == "dr-x"


async def test_delete_ambient_session(aas_emulator, http, token) -> None:
    await aas_emulator.create_ambient_session("enc-del", token)
    url = aas_emulator.http_url + "/ambient-sessions/enc-del"
    async with http.delete(url, headers=rest_headers(token)) as resp:
        assert resp.status == 204
    async with http.delete(url, headers=rest_headers(token)) as resp:
        assert resp.status == 404
    with pytest.raises(LookupError):
        await aas_emulator.session("enc-del")


async def test_bad_json_body(aas_emulator, http, token) -> None:
    url = aas_emulator.http_url + FINALIZE
    headers = {**rest_headers(token), "Content-Type": "application/json"}
    async with http.post(url, data=b"{nope", headers=headers) as resp:
        assert resp.status == 400
        assert (await resp.json()) == {"error": "request body must be a JSON object"}


async def test_finalize_twice_with_another_total_is_refused(aas_emulator, http, token) -> None:
    cid = "enc-twice"
    await aas_emulator.create_ambient_session(cid, token)
    assert (await finalize(http, aas_emulator, token, finalize_body(cid, 1, 3)))[0] == 200
    assert (await finalize(http, aas_emulator, token, finalize_body(cid, 1, 3)))[0] == 200
    code, body = await finalize(http, aas_emulator, token, finalize_body(cid, 1, 4))
    assert code == 400
    assert "declared earlier" in body["error"]
