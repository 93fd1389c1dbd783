"""Both live transports survive a service restart mid-recording and resume exactly."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from edge_recorder.uplinks.aas.factory import aas_uplinks
from edge_recorder.uplinks.base import DataFormat, RecordingRef, UplinkError
from tests.integration.uplinks.conftest import (
    CHUNK_100MS,
    chunks,
    device_config,
    new_session,
    pcm_audio,
    wait_until,
)
from tests.support.emulator import EmulatorHandle

PCM = DataFormat("pcm", 16000, 16, 1)


@pytest.mark.parametrize("transport", ["grpc", "websocket"])
async def test_resume_after_emulator_restart(
    aas_emulator: EmulatorHandle, tmp_path: Path, transport: str
) -> None:
    """The service restarts mid-recording: the same client reconnects and resumes."""
    cfg = device_config(
        aas_emulator,
        tmp_path,
        uplink={"live_transport": transport, "retry_initial_s": 0.1, "retry_max_s": 0.5},
    )
    uplinks = aas_uplinks(cfg)
    session = new_session(aas_emulator)
    rec = RecordingRef.new(1)
    audio = pcm_audio(10 * CHUNK_100MS, seed=21)
    try:
        live = await uplinks.live.open_recording(session, rec, PCM)
        for offset, data in chunks(audio[: 4 * CHUNK_100MS]):
            await live.send(offset, data)
        confirmed = await live.wait_confirmed(4 * CHUNK_100MS, 5.0)
        await aas_emulator.restart()
        with pytest.raises(UplinkError) as info:
            await live.send(confirmed, audio[confirmed : confirmed + CHUNK_100MS])
            await live.wait_confirmed(confirmed + CHUNK_100MS, 5.0)
        assert info.value.retryable
        await live.abort()

        reopened: list[Any] = []

        async def reopen() -> bool:
            try:
                reopened.append(
                    await uplinks.live.open_recording(session, rec, PCM, starting_offset=confirmed)
                )
            except UplinkError as err:
                assert err.retryable, err
                return False
            return True

        await wait_until(reopen, timeout_s=10, step_s=0.1)
        again = reopened[0]
        assert again.resume_offset >= confirmed
        for offset, data in chunks(audio, start=again.resume_offset):
            await again.send(offset, data)
        assert await again.close() == len(audio)
    finally:
        await uplinks.aclose()
    assert await aas_emulator.recording_bytes(session.correlation_id, rec.guid) == audio
