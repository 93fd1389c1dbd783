"""The service holds more than the spool kept (power cut lost the unsynced tail)."""

from __future__ import annotations

import logging

import pytest

from edge_recorder.delivery.state import DeliveryState
from edge_recorder.uplinks.aas.identity import aas_identity
from edge_recorder.uplinks.base import DataFormat, RecordingRef
from tests.chaos.rig import CHUNK, pcm
from tests.integration.delivery.conftest import MakeRig


async def test_server_bytes_beyond_the_spool_are_kept_and_the_recording_closes_there(
    make_rig: MakeRig, caplog: pytest.LogCaptureFixture
) -> None:
    rig = await make_rig(start=False)
    rec = rig.begin()
    for _ in range(6):
        rec.write()
    rec.close("crash-recovered")
    rig.end(rec.cid)
    # Before the cut the device had streamed one more chunk than its spool kept on disk.
    lost_tail = pcm(99, CHUNK)
    uplinks = rig.uplinks()
    session = aas_identity(rig.config.aas, rec.cid)
    stream = await uplinks.live.open_recording(session, RecordingRef(rec.rid, 1), DataFormat())
    await stream.send(0, bytes(rec.data) + lost_tail)
    await stream.wait_confirmed(len(rec.data) + CHUNK, 5)
    await stream.abort()
    await uplinks.aclose()
    DeliveryState(rig.spool.dir).mark_live(rec.rid)  # the engine had opened it live
    rec.data += lost_tail  # the service's bytes are the device's own output

    with caplog.at_level(logging.WARNING, logger="edge_recorder.delivery.live"):
        await rig.start_engine()
        await rig.wait_processed()
    assert await rig.verify() == []
    assert any("power cut" in r.getMessage() for r in caplog.records)
