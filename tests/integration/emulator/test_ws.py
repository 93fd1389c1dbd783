"""WebSocket front: framing with and without header blocks, offsets, resume, refusals."""

from __future__ import annotations

import base64
import json
import uuid

import aiohttp
import pytest
from aiohttp import WSMsgType

from tests.support.emulator import CUSTOMER_ID, PARTNER_ID, PRODUCT_ID, EmulatorHandle

AUDIO = bytes(range(256)) * 16  # 4096 bytes


def ws_headers(token: str | None, user: bool = True, customer: bool = True) -> dict[str, str]:
    headers: dict[str, str] = {}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    if customer:
        headers["customer-id"] = CUSTOMER_ID
    if user:
        headers["external-user-id"] = "dr-ws"
    return headers


def frame(path: str, payload: dict) -> str:
    return (
        f"Path={path}\r\nX-MS-Request-Id={uuid.uuid4()}\r\n"
        f"X-Timestamp=2026-01-01T00:00:00Z\r\n\r\n{json.dumps(payload)}"
    )


def open_payload(cid: str, rid: str, starting_offset: int = 0) -> dict:
    return {
        "recordingId": rid,
        "dataFormat": {"pcm": {"sampleRateHz": 16000, "bitcount": 16, "channels": 1}},
        "ambientSessionData": {
            "productId": PRODUCT_ID,
            "partnerId": PARTNER_ID,
            "customerId": CUSTOMER_ID,
            "correlationId": cid,
            "externalIdentifiers": [{"type": "userId", "identifier": "dr-ws"}],
            "localeInfo": {"recordingLocales": ["en-US"], "encounterReportLocale": "en-US"},
        },
        "actions": ["generate-draft"],
        "reason": "ui",
        "startingOffset": starting_offset,
    }


def chunk(offset: int, data: bytes) -> bytes:
    return json.dumps({"DataStart": offset, "Data": base64.b64encode(data).decode()}).encode()


def parse(text: str) -> tuple[dict[str, str], dict]:
    if "\r\n\r\n" in text:
        head, body = text.split("\r\n\r\n", 1)
        headers = dict(line.split("=", 1) for line in head.split("\r\n"))
        return headers, json.loads(body)
    return {}, json.loads(text)


def url(emu: EmulatorHandle, path: str = "/ws") -> str:
    return f"{emu.ws_url}{path}?api-version=1"


async def receive_json(ws) -> tuple[dict[str, str], dict]:
    msg = await ws.receive(timeout=10)
    assert msg.type == WSMsgType.TEXT, msg
    return parse(msg.data)


async def test_record_with_header_blocks(aas_emulator, http, token) -> None:
    rid = str(uuid.uuid4())
    async with http.ws_connect(url(aas_emulator), headers=ws_headers(token)) as ws:
        await ws.send_str(frame("RecordingOpen", open_payload("enc-ws", rid)))
        headers, body = await receive_json(ws)
        assert headers["Path"] == "recordingOpens"
        assert "X-MS-Request-Id" in headers and "X-Timestamp" in headers
        assert body == {
            "recordingOpens": {"recordingId": rid, "dataStored": 0, "sequenceNumber": 1}
        }
        await ws.send_bytes(chunk(0, AUDIO[:1000]))
        assert (await receive_json(ws))[1] == {"dataStored": {"dataStored": 1000}}
        await ws.send_bytes(chunk(0, AUDIO[:1000]))  # resend: acknowledged, ignored
        assert (await receive_json(ws))[1] == {"dataStored": {"dataStored": 1000}}
        await ws.send_bytes(chunk(1000, AUDIO[1000:]))
        assert (await receive_json(ws))[1] == {"dataStored": {"dataStored": len(AUDIO)}}
        close = {"recordingId": rid, "recordingLengthSeconds": 0.128, "reason": "ui"}
        await ws.send_str(frame("RecordingClose", close))
        assert (await receive_json(ws))[1] == {"recordingCloses": {"dataStored": len(AUDIO)}}
        assert (await ws.receive(timeout=10)).type == WSMsgType.CLOSE
        assert ws.close_code == 1000
    rec = await aas_emulator.recording("enc-ws", rid)
    assert (rec["transport"], rec["state"], rec["recordingLengthSeconds"]) == (
        "ws",
        "closed",
        0.128,
    )
    assert await aas_emulator.recording_bytes("enc-ws", rid) == AUDIO


async def test_server_frames_without_header_blocks(make_aas_emulator, http) -> None:
    emu = await make_aas_emulator(ws_header_blocks=False)
    token = await emu.fetch_token()
    rid = str(uuid.uuid4())
    async with http.ws_connect(url(emu), headers=ws_headers(token)) as ws:
        # a client frame without a header block is accepted too
        await ws.send_str(json.dumps(open_payload("enc-plain", rid)))
        msg = await ws.receive(timeout=10)
        assert msg.data.startswith("{")
        assert json.loads(msg.data)["recordingOpens"]["dataStored"] == 0


async def test_invalid_open_closes_without_a_message(aas_emulator, http, token) -> None:
    async with http.ws_connect(url(aas_emulator), headers=ws_headers(token)) as ws:
        await ws.send_str(frame("RecordingOpen", open_payload("enc-bad", "not-a-guid")))
        msg = await ws.receive(timeout=10)
        assert msg.type == WSMsgType.CLOSE
        assert not msg.extra


async def test_unconvertible_open_closes_without_a_message(aas_emulator, http, token) -> None:
    async with http.ws_connect(url(aas_emulator), headers=ws_headers(token)) as ws:
        await ws.send_str(frame("RecordingOpen", {"recordingId": 5, "bogus": True}))
        assert (await ws.receive(timeout=10)).type == WSMsgType.CLOSE


async def test_gap_closes_with_a_reason(aas_emulator, http, token) -> None:
    async with http.ws_connect(url(aas_emulator), headers=ws_headers(token)) as ws:
        await ws.send_str(frame("RecordingOpen", open_payload("enc-ws-gap", str(uuid.uuid4()))))
        await receive_json(ws)
        await ws.send_bytes(chunk(10, b"xx"))
        msg = await ws.receive(timeout=10)
        assert msg.type == WSMsgType.CLOSE
        assert ws.close_code == 4416
        assert "gap" in msg.extra


async def test_conflict_closes_4409(aas_emulator, http, token) -> None:
    async with http.ws_connect(url(aas_emulator), headers=ws_headers(token)) as ws:
        await ws.send_str(frame("RecordingOpen", open_payload("enc-ws-c", str(uuid.uuid4()))))
        await receive_json(ws)
        await ws.send_bytes(chunk(0, b"aa"))
        await receive_json(ws)
        await ws.send_bytes(chunk(0, b"ab"))
        assert (await ws.receive(timeout=10)).type == WSMsgType.CLOSE
        assert ws.close_code == 4409


async def test_resume_reports_bytes_held(aas_emulator, http, token) -> None:
    rid = str(uuid.uuid4())
    async with http.ws_connect(url(aas_emulator), headers=ws_headers(token)) as ws:
        await ws.send_str(frame("RecordingOpen", open_payload("enc-ws-r", rid)))
        await receive_json(ws)
        await ws.send_bytes(chunk(0, AUDIO[:2048]))
        await receive_json(ws)
    async with http.ws_connect(url(aas_emulator), headers=ws_headers(token)) as ws:
        await ws.send_str(frame("RecordingOpen", open_payload("enc-ws-r", rid, 2048)))
        assert (await receive_json(ws))[1]["recordingOpens"]["dataStored"] == 2048
        await ws.send_bytes(chunk(2048, AUDIO[2048:]))
        assert (await receive_json(ws))[1] == {"dataStored": {"dataStored": len(AUDIO)}}
    assert await aas_emulator.recording_bytes("enc-ws-r", rid) == AUDIO


@pytest.mark.parametrize(
    ("query", "headers_kind", "status"),
    [
        ("", "ok", 400),
        ("?api-version=1", "no-token", 401),
        ("?api-version=1", "no-customer", 400),
        ("?api-version=1", "no-user", 403),
    ],
)
async def test_upgrade_refusals(aas_emulator, http, token, query, headers_kind, status) -> None:
    headers = {
        "ok": ws_headers(token),
        "no-token": ws_headers(None),
        "no-customer": ws_headers(token, customer=False),
        "no-user": ws_headers(token, user=False),
    }[headers_kind]
    with pytest.raises(aiohttp.WSServerHandshakeError) as err:
        async with http.ws_connect(f"{aas_emulator.ws_url}/ws{query}", headers=headers):
            pass
    assert err.value.status == status
    if not query:
        assert err.value.headers["api-supported-versions"] == "1"


async def test_token_in_websocket_protocol_header(aas_emulator, http, token) -> None:
    headers = ws_headers(None)
    async with http.ws_connect(
        url(aas_emulator), headers=headers, protocols=("ambient.v1", token)
    ) as ws:
        assert ws.protocol == "ambient.v1"
        await ws.send_str(frame("RecordingOpen", open_payload("enc-proto", str(uuid.uuid4()))))
        assert "recordingOpens" in (await receive_json(ws))[1]


async def test_retrieve_configuration_answers_on_connect(aas_emulator, http, token) -> None:
    path = url(aas_emulator, "/ws/retrieveConfiguration")
    async with http.ws_connect(path, headers=ws_headers(token)) as ws:
        headers, body = await receive_json(ws)
    assert headers["Path"] == "retrieveConfiguration"
    assert body["maxRecordingDurationSeconds"] == aas_emulator.settings.max_recording_duration_s
    assert body["warningLeadTimeSeconds"] == aas_emulator.settings.warning_lead_time_s
    assert body["maxChunkBytes"] == aas_emulator.settings.max_chunk_bytes
    assert {"pcm": {"sampleRateHz": 16000, "bitcount": 16, "channels": 1}} in body[
        "supportedFormats"
    ]


async def test_start_processing(aas_emulator, http, token) -> None:
    rid = str(uuid.uuid4())
    async with http.ws_connect(url(aas_emulator), headers=ws_headers(token)) as ws:
        await ws.send_str(frame("RecordingOpen", open_payload("enc-ws-p", rid)))
        await receive_json(ws)
        await ws.send_bytes(chunk(0, AUDIO))
        await receive_json(ws)
        await ws.send_str(frame("RecordingClose", {"recordingId": rid, "reason": "ui"}))
        await receive_json(ws)
    payload = {"ambientSessionData": {"correlationId": "enc-ws-p"}, "recordingIds": [rid]}
    path = url(aas_emulator, "/ws/startProcessing")
    async with http.ws_connect(path, headers=ws_headers(token)) as ws:
        await ws.send_str(frame("StartProcessing", payload))
        _, body = await receive_json(ws)
    assert body == {"correlationId": "enc-ws-p", "recordingCount": 1, "totalBytes": len(AUDIO)}
    assert (await aas_emulator.session("enc-ws-p"))["processingStarted"] is True


async def test_drop_stream_fault_cuts_the_socket(aas_emulator, http, token) -> None:
    await aas_emulator.add_fault(kind="drop_stream", target="ws", afterBytes=1500)
    rid = str(uuid.uuid4())
    async with http.ws_connect(url(aas_emulator), headers=ws_headers(token)) as ws:
        await ws.send_str(frame("RecordingOpen", open_payload("enc-ws-drop", rid)))
        await receive_json(ws)
        await ws.send_bytes(chunk(0, AUDIO[:1000]))
        await receive_json(ws)
        await ws.send_bytes(chunk(1000, AUDIO[1000:2000]))
        msg = await ws.receive(timeout=10)
        assert msg.type in (WSMsgType.CLOSED, WSMsgType.ERROR, WSMsgType.CLOSE)
        assert ws.close_code != 1000
    assert (await aas_emulator.recording("enc-ws-drop", rid))["bytes"] == 1500
