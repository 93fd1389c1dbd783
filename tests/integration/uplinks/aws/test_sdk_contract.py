"""AWS's own JavaScript SDK (@aws-sdk/client-transcribe-streaming, version locked in
tests/contract/package-lock.json) runs StartMedicalScribeStream against the HealthScribe
emulator exactly as the SDK sends it: HTTP/2 with its graceful GOAWAY, SigV4, signed events.
`make test` installs Node.js and the locked SDK; this test never skips."""

from __future__ import annotations

import asyncio
import json
import os
import wave
from pathlib import Path

from tests.support.aws_emulator import ACCESS_KEY, SECRET_KEY, AwsEmulatorHandle
from tests.support.contract import CONTRACT, node


async def test_the_aws_sdk_streams_a_visit_that_the_emulator_stores_exactly(
    aws_emulator: AwsEmulatorHandle, tmp_path: Path
) -> None:
    node_bin = node("@aws-sdk/client-transcribe-streaming")
    samples = bytes(range(256)) * 250  # 2 s of 16 kHz PCM16, every byte position distinct-ish
    wav = tmp_path / "visit.wav"
    with wave.open(str(wav), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(16000)
        out.writeframes(samples)
    # The emulator serves from this event loop: the SDK runs as a child process beside it.
    proc = await asyncio.create_subprocess_exec(
        node_bin, str(CONTRACT / "healthscribe_stream.mjs"), aws_emulator.endpoint_url,
        ACCESS_KEY, SECRET_KEY, str(wav),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, cwd=CONTRACT,
        env={**os.environ, "NODE_EXTRA_CA_CERTS": str(aws_emulator.ca_file)},
    )  # fmt: skip
    async with asyncio.timeout(120):
        stdout, stderr = await proc.communicate()
    assert proc.returncode == 0, stderr.decode()
    answer = json.loads(stdout)
    assert answer["bytes"] == len(samples) and answer["segments"] >= 1
    session = await aws_emulator.session(answer["sessionId"])
    assert session["completed"] is True  # END_OF_SESSION arrived and was accepted
    assert await aws_emulator.session_bytes(answer["sessionId"]) == samples
