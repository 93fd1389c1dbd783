"""Corti's own JavaScript SDK (@corti/sdk, version locked in tests/contract/package-lock.json)
drives the Corti emulator through the REST workflow and the real-time `/streams` WebSocket, and
every answer and stream message must fit the SDK's own schema for it. `make test` installs
Node.js and the locked SDK; these tests never skip."""

from __future__ import annotations

import asyncio
import hashlib
import json
import subprocess
import wave
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from devtools.emulators.corti.streams import BYTES_PER_S, TRANSCRIPT_EVERY, transcript_message
from edge_recorder.delivery.state import DeliveryState
from edge_recorder.uplinks.bundle import Uplinks
from edge_recorder.uplinks.corti.stream import stream_configuration, stream_url
from tests.support.contract import CONTRACT, node
from tests.support.corti_emulator import CortiHandle, MakeCorti

SDK = "@corti/sdk"


def speech_wav(path: Path, seconds: float = 2.0) -> Path:
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(16000)
        out.writeframes(bytes(range(256)) * int(seconds * 125))
    return path


def wav_pcm(path: Path) -> bytes:
    with wave.open(str(path), "rb") as wav:
        return wav.readframes(wav.getnframes())


async def run_sdk(script: str, emu: CortiHandle, *args: str) -> Any:
    """Run one of the SDK scripts against `emu`; its JSON output. The emulator serves from this
    event loop: the SDK runs as a child process beside it."""
    proc = await asyncio.create_subprocess_exec(
        node(SDK), str(CONTRACT / script), emu.http_url, emu.tenant, emu.client_id,
        emu.client_secret, *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, cwd=CONTRACT,
    )  # fmt: skip
    async with asyncio.timeout(120):
        stdout, stderr = await proc.communicate()
    assert proc.returncode == 0, stderr.decode()
    return json.loads(stdout)


async def test_the_sdk_runs_the_whole_workflow_and_every_answer_fits_its_types(
    make_corti_emulator: MakeCorti, tmp_path: Path
) -> None:
    emu: CortiHandle = await make_corti_emulator()
    wav = speech_wav(tmp_path / "visit.wav")
    steps = await run_sdk("corti_workflow.mjs", emu, str(wav))
    interaction = steps["interaction"]["interactionId"]
    assert steps["interactionGet"]["id"] == interaction
    assert interaction in steps["interactionList"]
    assert steps["recordingList"]["recordings"] == [steps["upload"]["recordingId"]]
    assert steps["recordingGet"]["bytes"] == wav.stat().st_size  # the file, byte for byte
    assert steps["transcriptGet"]["status"] == "completed"
    assert [t["id"] for t in steps["transcriptList"]["transcripts"]] == [steps["transcript"]["id"]]
    assert steps["documentGet"]["id"] == steps["document"]["id"]
    assert [d["id"] for d in steps["documentList"]["data"]] == [steps["document"]["id"]]


def check(schema: str, document: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [node(SDK), str(CONTRACT / "check_schema.mjs"), schema],
        input=json.dumps(document), capture_output=True, text=True, timeout=60, cwd=CONTRACT,
    )  # fmt: skip


def test_stream_transcripts_fit_the_sdks_stream_type() -> None:
    assert check("StreamTranscriptMessage", transcript_message(0.0, 1.0)).returncode == 0
    thin = {"type": "transcript", "data": [{"id": "x", "transcript": "t", "final": True,
                                            "participant": {"channel": 0}}]}  # fmt: skip
    refused = check("StreamTranscriptMessage", thin)
    assert refused.returncode == 1 and "speakerId" in refused.stderr


@pytest.mark.parametrize("mode", ["transcription", "facts"])
async def test_the_sdk_streams_in_real_time_and_every_message_fits_its_types(
    make_corti_emulator: MakeCorti, tmp_path: Path, mode: str
) -> None:
    emu: CortiHandle = await make_corti_emulator()
    wav = speech_wav(tmp_path / "visit.wav", seconds=3.0)
    pcm = wav_pcm(wav)
    # The script fails unless every message fits the SDK's type and the SDK delivered it.
    out = await run_sdk("corti_stream.mjs", emu, str(wav), mode)
    seconds = len(pcm) // TRANSCRIPT_EVERY  # the emulator answers a transcript per second
    assert out["audio"] == {"bytes": len(pcm), "chunks": len(pcm) // 8000,
                            "sha256": hashlib.sha256(pcm).hexdigest()}  # fmt: skip
    # One flush after 1.5 s of audio (6 frames of 250 ms): one transcript was due before it.
    per_second = ["transcript", "facts"] if mode == "facts" else ["transcript"]
    assert out["types"] == (
        ["CONFIG_ACCEPTED", *per_second, "flushed", *per_second * (seconds - 1), "usage", "ENDED"]
    )
    spans = [[(t["time"]["start"], t["time"]["end"]) for t in m["data"]]
             for m in out["transcripts"]]  # fmt: skip
    step = TRANSCRIPT_EVERY / BYTES_PER_S
    assert spans == [[(i * step, (i + 1) * step)] for i in range(seconds)]  # contiguous, in order
    assert all(t["final"] for m in out["transcripts"] for t in m["data"])
    assert len(out["facts"]) == (seconds if mode == "facts" else 0)
    assert out["close"]["code"] == 1000  # any other code and the SDK reconnects
    # The emulator kept exactly the audio the SDK sent, in one stream (no SDK reconnect).
    session = await emu.session(out["interactionId"])
    (record,) = session["streams"]
    assert record["bytes"] == len(pcm) and record["sha256"] == hashlib.sha256(pcm).hexdigest()
    assert record["configured"] and record["ended"] and record["flushes"] == 1
    assert session["recordings"] == []  # streamed audio is not a recording


async def test_stream_refusals_and_errors_fit_the_sdks_stream_types(
    uplinks: Uplinks, corti_emulator: CortiHandle, state: DeliveryState
) -> None:
    await uplinks.store_forward.create_session(uplinks.identity("enc-errors"))
    interaction = state.get("corti:enc-errors:interaction") or ""
    url = stream_url(corti_emulator.ws_url, interaction, corti_emulator.tenant,
                     str(await uplinks.check_auth()))  # fmt: skip
    async with asyncio.timeout(30), aiohttp.ClientSession() as http:
        async with http.ws_connect(url) as ws:
            await ws.send_json({"type": "config", "configuration": {"mode": {"type": "facts"}}})
            denied = await ws.receive_json()
            closing = await ws.receive()
        async with http.ws_connect(url) as ws:
            await ws.send_json({"type": "config", "configuration": stream_configuration("en")})
            accepted = await ws.receive_json()
            await ws.send_json({"type": "dictate"})
            await ws.send_str("{not json")
            errors = [await ws.receive_json(), await ws.receive_json()]
    assert denied["type"] == "CONFIG_DENIED" and accepted["type"] == "CONFIG_ACCEPTED"
    assert closing.type is aiohttp.WSMsgType.CLOSE and closing.data == 1000
    assert check("StreamConfigStatusMessage", denied).returncode == 0
    assert [e["type"] for e in errors] == ["error", "error"]
    for error in errors:
        fits = check("StreamErrorMessage", error)
        assert fits.returncode == 0, fits.stderr
