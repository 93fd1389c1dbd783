"""What the emulator does the way the live service was observed to (`fidelity = "live"`), and
what it no longer demands that the live service does not."""

from __future__ import annotations

import json
import uuid

import aiohttp
import pytest

from tests.integration.emulator.conftest import AUDIO_QS, finalize_body, rest_headers
from tests.support.emulator import MakeEmulator


async def test_the_partner_api_takes_a_session_without_a_trace_header(
    make_aas_emulator: MakeEmulator, http: aiohttp.ClientSession
) -> None:
    emu = await make_aas_emulator()
    token = await emu.fetch_token()
    url = f"{emu.http_url}/ambient-sessions?api-version=2&customerId={emu.customer_id}"
    body = {
        "correlationId": "enc-1",
        "productId": emu.product_id,
        "customerId": emu.customer_id,
        "externalUserId": "dr-who",
    }
    headers = {"Authorization": f"Bearer {token}"}  # no x-correlation-id
    async with http.put(url, json=body, headers=headers) as resp:
        assert resp.status in (200, 201), await resp.text()


async def test_live_fidelity_refuses_with_an_empty_400(
    make_aas_emulator: MakeEmulator, http: aiohttp.ClientSession
) -> None:
    emu = await make_aas_emulator(fidelity="live")
    token = await emu.fetch_token()
    headers = {"Authorization": f"Bearer {token}"}  # no trace header: refused
    url = emu.http_url + "/audio/finalizeUpload" + AUDIO_QS
    async with http.post(url, json=finalize_body("c", 1, 1), headers=headers) as resp:
        assert resp.status == 400
        assert await resp.read() == b""
    async with http.post(url, json=finalize_body("c", 1, 1), headers=rest_headers(token)) as resp:
        assert resp.status == 404  # other answers keep their bodies
        assert await resp.read()


async def test_live_fidelity_websocket_is_silent_to_app_tokens_and_closes_1007_on_garbage(
    make_aas_emulator: MakeEmulator, http: aiohttp.ClientSession
) -> None:
    from tests.integration.emulator.test_ws import chunk, open_payload, url, ws_headers

    emu = await make_aas_emulator(fidelity="live")
    app_token = await emu.fetch_token()
    async with http.ws_connect(url(emu), headers=ws_headers(app_token)) as ws:
        await ws.send_str(json.dumps(open_payload("enc-ws", str(uuid.uuid4()))))
        await ws.send_bytes(chunk(0, b"\0" * 3200))
        with pytest.raises(TimeoutError):
            await ws.receive(timeout=1.0)  # silence: no recordingOpens, no dataStored
    user_token = await emu.mint_token(appOnly=False)
    async with http.ws_connect(url(emu), headers=ws_headers(user_token)) as ws:
        await ws.send_str(json.dumps(open_payload("enc-ws2", str(uuid.uuid4()))))
        await ws.send_bytes(chunk(0, b"\1" * 3200))
        first = await ws.receive(timeout=5.0)  # the open is never answered: the ack comes first
        assert first.type == aiohttp.WSMsgType.TEXT
        assert not first.data.startswith("Path=")  # live messages carry no header block
        assert json.loads(first.data) == {"dataStored": {"dataStored": 3200}}
        await ws.send_bytes(b"not a DataChunk")
        closed = await ws.receive(timeout=5.0)
        assert closed.type == aiohttp.WSMsgType.CLOSE
        assert (closed.data, closed.extra) == (1007, "Invalid DataChunk received")
