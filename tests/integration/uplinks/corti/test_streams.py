"""The `/streams` real-time protocol client against the emulator's WebSocket endpoint."""

from __future__ import annotations

import hashlib
import time

import pytest

from edge_recorder.delivery.state import DeliveryState
from edge_recorder.uplinks.base import ErrorKind, UplinkError
from edge_recorder.uplinks.bundle import Uplinks
from edge_recorder.uplinks.corti.stream import CortiStream, stream_configuration, stream_url
from tests.support.corti_emulator import CortiHandle

RATE = 32000  # 16 kHz pcm16 bytes per second


async def _url(
    up: Uplinks, emu: CortiHandle, state: DeliveryState, token: str | None = None
) -> str:
    await up.store_forward.create_session(up.identity("enc-live"))
    iid = state.get("corti:enc-live:interaction") or ""
    token = token or str(await up.check_auth())
    return stream_url(emu.ws_url, iid, emu.tenant, token)


async def test_config_audio_flush_end(
    uplinks: Uplinks, corti_emulator: CortiHandle, state: DeliveryState
) -> None:
    url = await _url(uplinks, corti_emulator, state)
    stream = await CortiStream.open(url, stream_configuration("en"), bytes_per_second=RATE)
    audio = bytes(range(256)) * 125  # 32000 bytes = 1 s in 4 frames of 250 ms
    started = time.monotonic()
    await stream.send(audio[:16000])
    ack = await stream.flush()
    assert ack.stored == 16000
    await stream.send(audio[16000:])
    paced = time.monotonic() - started
    stats = await stream.end()
    assert paced >= 0.75 - 0.05  # 4 frames of 250 ms: the last goes out at ~0.75 s, not at once
    assert stats.sent == 32000 and stats.flushed == 16000 and "credits" in stats.usage
    assert stats.transcripts == 1  # the emulator answers one transcript per second of audio
    (record,) = (await corti_emulator.session("enc-live"))["streams"]
    assert record["bytes"] == 32000 and record["flushes"] == 1 and record["ended"]
    assert record["sha256"] == hashlib.sha256(audio).hexdigest()
    assert (await corti_emulator.session("enc-live"))["recordings"] == []  # not a recording


async def test_a_refused_configuration_is_invalid(
    uplinks: Uplinks, corti_emulator: CortiHandle, state: DeliveryState
) -> None:
    url = await _url(uplinks, corti_emulator, state)
    bad = {"transcription": {"primaryLanguage": "en"}, "mode": {"type": "dictation"}}
    with pytest.raises(UplinkError) as caught:
        await CortiStream.open(url, bad, bytes_per_second=RATE)
    assert caught.value.kind is ErrorKind.INVALID and "CONFIG_DENIED" in caught.value.message


async def test_upgrade_errors_have_kinds(
    uplinks: Uplinks, corti_emulator: CortiHandle, state: DeliveryState
) -> None:
    expired = await corti_emulator.mint_token(lifetimeS=-1)
    url = await _url(uplinks, corti_emulator, state, token=expired)
    with pytest.raises(UplinkError) as caught:
        await CortiStream.open(url, stream_configuration("en"), bytes_per_second=RATE)
    assert caught.value.kind is ErrorKind.AUTH and caught.value.transport == "websocket"
    token = str(await uplinks.check_auth())
    missing = stream_url(corti_emulator.ws_url, "no-such-interaction", corti_emulator.tenant, token)
    with pytest.raises(UplinkError) as caught:
        await CortiStream.open(missing, stream_configuration("en"), bytes_per_second=RATE)
    assert caught.value.kind is ErrorKind.NOT_FOUND


async def test_a_dropped_stream_is_unavailable(
    uplinks: Uplinks, corti_emulator: CortiHandle, state: DeliveryState
) -> None:
    url = await _url(uplinks, corti_emulator, state)
    await corti_emulator.add_fault(kind="drop_stream", target="ws", afterBytes=8000)
    stream = await CortiStream.open(url, stream_configuration("en"), bytes_per_second=RATE * 8)
    with pytest.raises(UplinkError) as caught:
        await stream.send(bytes(32000))
        await stream.flush(timeout_s=5)
    await stream.aclose()
    assert caught.value.kind is ErrorKind.UNAVAILABLE
