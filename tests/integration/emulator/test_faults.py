"""Fault injection over the HTTP control API."""

from __future__ import annotations

import time

from tests.integration.emulator.conftest import finalize_body, rest_headers

URL = "/audio/finalizeUpload?api-version=2025-07-15"
BODY = finalize_body("c", 1, 1, skipAmbientSessionExistence=True)


async def test_fail_next_n_rest_requests(aas_emulator, http, token) -> None:
    added = await aas_emulator.add_fault(kind="fail", target="rest", status=500, count=2)
    assert added["fault"]["count"] == 2
    statuses = []
    for _ in range(3):
        async with http.post(
            aas_emulator.http_url + URL, json=BODY, headers=rest_headers(token)
        ) as resp:
            statuses.append(resp.status)
            if resp.status == 500:
                assert (await resp.json())["error"] == "injected fault: 500"
    assert statuses == [500, 500, 200]


async def test_fault_limited_to_a_path_and_the_token_endpoint(aas_emulator, http, token) -> None:
    await aas_emulator.add_fault(kind="fail", target="rest", path="/audio/storeChunk", status=503)
    async with http.post(aas_emulator.http_url + URL, json=BODY, headers=rest_headers(token)) as r:
        assert r.status == 200  # another path: untouched
    assert len(await aas_emulator.faults()) == 1
    await aas_emulator.clear_faults()
    await aas_emulator.add_fault(kind="fail", target="token", status=503)
    form = {
        "grant_type": "client_credentials",
        "client_id": aas_emulator.client_id,
        "client_secret": aas_emulator.client_secret,
    }
    async with http.post(aas_emulator.token_url, data=form) as resp:
        assert resp.status == 503
    async with http.post(aas_emulator.token_url, data=form) as resp:
        assert resp.status == 200


async def test_latency_until_cleared(aas_emulator, http, token) -> None:
    await aas_emulator.add_fault(kind="latency", target="rest", latencyMs=300)
    for _ in range(2):
        started = time.monotonic()
        async with http.post(
            aas_emulator.http_url + URL, json=BODY, headers=rest_headers(token)
        ) as resp:
            assert resp.status == 200
        assert time.monotonic() - started >= 0.3  # a lower bound, not a speed goal
    await aas_emulator.clear_faults()
    assert await aas_emulator.faults() == []


async def test_bad_fault_specs_are_400(aas_emulator, http) -> None:
    for spec in (
        {"kind": "explode"},
        {"kind": "fail", "status": 200},
        {"kind": "fail", "target": "mars"},
        {"kind": "drop_stream", "target": "rest"},
        {"kind": "fail", "count": 0},
        {"kind": "forget_recording"},
    ):
        async with http.post(aas_emulator.http_url + "/_emulator/faults", json=spec) as resp:
            assert resp.status == 400, spec
            assert (await resp.json())["error"]
    spec = {"kind": "forget_recording", "correlationId": "x", "recordingId": "y"}
    async with http.post(aas_emulator.http_url + "/_emulator/faults", json=spec) as resp:
        assert resp.status == 404


async def test_rest_recording_can_be_forgotten(aas_emulator, http, token) -> None:
    body = finalize_body("enc-f", 2, 3, skipAmbientSessionExistence=True)
    async with http.post(aas_emulator.http_url + URL, json=body, headers=rest_headers(token)) as r:
        assert r.status == 200
    assert (await aas_emulator.recording("enc-f", 2))["totalChunks"] == 3
    await aas_emulator.forget_recording("enc-f", 2)
    assert (await aas_emulator.session("enc-f"))["recordings"] == []
