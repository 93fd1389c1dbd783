"""Live streaming from the spool to the emulator, through a TCP fault proxy."""

from __future__ import annotations

from tests.chaos.rig import Rig
from tests.support.helpers import async_poll_until


async def _finish(rig: Rig, timeout_s: float = 30.0) -> None:
    await rig.wait_processed(timeout_s)
    assert await rig.verify() == []


async def test_happy_live_path_streams_while_capturing(rig: Rig) -> None:
    rec = rig.begin()
    await rig.play(rec, 20)
    # delivered while still recording: the service confirms bytes of an open recording
    await async_poll_until(
        lambda: rig.spool.recording(rec.rid).confirmed >= 10 * 3200, what="live acks"
    )
    assert rig.spool.recording(rec.rid).state == "open"
    await rig.play(rec, 10)
    rec.close()
    rig.end(rec.cid)
    await _finish(rig)
    session = await rig.emu.session(rec.cid)
    assert session["recordings"][0]["transport"] == "grpc"
    assert rig.engine is not None and rig.engine.snapshot().online
    assert rig.engine.snapshot().service_limits == (5400.0, 300.0)


async def test_cut_mid_recording_resumes_at_confirmed_offset(rig: Rig) -> None:
    rec = rig.begin()
    await rig.play(rec, 15)
    await async_poll_until(lambda: rig.spool.recording(rec.rid).confirmed > 0, what="acks")
    connections = rig.grpc.stats.connections
    rig.network("cut")
    await rig.play(rec, 15)  # recorded during the outage: spooled, not lost
    rig.network("pass")
    await rig.play(rec, 10)
    await async_poll_until(lambda: rig.grpc.stats.connections > connections, what="reconnect")
    rec.close()
    rig.end(rec.cid)
    await _finish(rig)
    session = await rig.emu.session(rec.cid)
    assert [r["transport"] for r in session["recordings"]] == ["grpc"]  # one recording, resumed


async def test_blackhole_is_detected_and_the_stream_resumes(rig: Rig) -> None:
    rec = rig.begin()
    await rig.play(rec, 10)
    await async_poll_until(lambda: rig.spool.recording(rec.rid).confirmed > 0, what="acks")
    rig.network("blackhole")
    await rig.play(rec, 20)
    confirmed = rig.spool.recording(rec.rid).confirmed
    # nothing gets through a black hole; the watchdog/keepalive must notice the dead link
    assert confirmed < len(rec.data)
    await async_poll_until(
        lambda: rig.engine is not None and not rig.engine.snapshot().online,
        timeout=15,
        what="dead link detected",
    )
    rig.network("pass")
    await rig.play(rec, 5)
    rec.close()
    rig.end(rec.cid)
    await _finish(rig, 40)
