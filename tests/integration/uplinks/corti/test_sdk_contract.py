"""Corti's own JavaScript SDK (@corti/sdk, version locked in tests/contract/package-lock.json)
drives the Corti emulator through the workflow, and every answer must fit the SDK's own schema
for it. `make test` installs Node.js and the locked SDK; these tests never skip."""

from __future__ import annotations

import asyncio
import json
import subprocess
import wave
from pathlib import Path

from devtools.emulators.corti.streams import transcript_message
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


async def test_the_sdk_runs_the_whole_workflow_and_every_answer_fits_its_types(
    make_corti_emulator: MakeCorti, tmp_path: Path
) -> None:
    emu: CortiHandle = await make_corti_emulator()
    wav = speech_wav(tmp_path / "visit.wav")
    # The emulator serves from this event loop: the SDK runs as a child process beside it.
    proc = await asyncio.create_subprocess_exec(
        node(SDK), str(CONTRACT / "corti_workflow.mjs"), emu.http_url, emu.tenant,
        emu.client_id, emu.client_secret, str(wav),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, cwd=CONTRACT,
    )  # fmt: skip
    async with asyncio.timeout(120):
        stdout, stderr = await proc.communicate()
    assert proc.returncode == 0, stderr.decode()
    steps = json.loads(stdout)
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
