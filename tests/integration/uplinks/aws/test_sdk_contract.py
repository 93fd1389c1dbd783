"""AWS's own JavaScript SDK (@aws-sdk/client-transcribe-streaming, version locked in
tests/contract/package-lock.json) runs StartMedicalScribeStream against the HealthScribe
emulator exactly as the SDK sends it: HTTP/2 with its graceful GOAWAY, SigV4, signed events.
`make test` installs Node.js and the locked SDK; this test never skips."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import wave
from pathlib import Path

from tests.support.aws_emulator import ACCESS_KEY, SECRET_KEY, AwsEmulatorHandle

ROOT = Path(__file__).resolve().parents[4]
CONTRACT = ROOT / "tests" / "contract"


async def test_the_aws_sdk_streams_a_visit_that_the_emulator_stores_exactly(
    aws_emulator: AwsEmulatorHandle, tmp_path: Path
) -> None:
    node = shutil.which("node")
    assert node, "Node.js is missing: `make test` installs it (apt nodejs)"
    assert (CONTRACT / "node_modules" / "@aws-sdk" / "client-transcribe-streaming").is_dir()
    samples = bytes(range(256)) * 250  # 2 s of 16 kHz PCM16, every byte position distinct-ish
    wav = tmp_path / "visit.wav"
    with wave.open(str(wav), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(16000)
        out.writeframes(samples)
    # The emulator serves from this event loop: the SDK runs as a child process beside it.
    proc = await asyncio.create_subprocess_exec(
        node, str(CONTRACT / "healthscribe_stream.mjs"), aws_emulator.endpoint_url,
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
