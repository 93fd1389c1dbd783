"""Store-and-forward over REST, service faults, token expiry and engine restarts."""

from __future__ import annotations

import uuid

import aiohttp

from tests.chaos.rig import CHUNK, Rig
from tests.integration.delivery.conftest import MakeRig
from tests.support.helpers import async_poll_until


async def _finish(rig: Rig, timeout_s: float = 30.0) -> None:
    await rig.wait_processed(timeout_s)
    assert await rig.verify() == []


async def _transports(rig: Rig, cid: str) -> list[str]:
    return [r["transport"] for r in (await rig.emu.session(cid))["recordings"]]


async def _offline_rig(make_rig: MakeRig) -> Rig:
    """Delivery starts with the network down, so it has never reached the service."""
    rig = await make_rig(start=False)
    rig.network("cut")
    await rig.start_engine()
    return rig


async def test_recording_closed_while_offline_goes_through_rest(make_rig: MakeRig) -> None:
    rig = await _offline_rig(make_rig)
    first = rig.begin()
    await rig.play(first, 12)
    first.close()
    second = rig.begin(first.cid)  # a pause/resume: a second recording of the encounter
    await rig.play(second, 7)
    second.close()
    rig.end(first.cid)
    assert rig.engine is not None
    await async_poll_until(lambda: rig.engine is not None and not rig.engine.snapshot().online)
    assert rig.spool.recording(first.rid).confirmed == 0
    rig.network("pass")
    rig.wake()
    await _finish(rig)
    assert await _transports(rig, first.cid) == ["rest", "rest"]


async def test_partly_streamed_recording_closed_offline_is_finished_by_resume(rig: Rig) -> None:
    rec = rig.begin()
    await rig.play(rec, 10)
    await async_poll_until(lambda: rig.spool.recording(rec.rid).confirmed > 0, what="acks")
    rig.network("reset")
    await rig.play(rec, 10)
    rec.close()
    rig.end(rec.cid)
    rig.network("pass")
    await _finish(rig)
    # the service knew the GUID: finished there, not uploaded a second time through REST
    assert await _transports(rig, rec.cid) == ["grpc"]


async def test_emulator_restart_mid_recording(rig: Rig) -> None:
    rec = rig.begin()
    await rig.play(rec, 10)
    await async_poll_until(lambda: rig.spool.recording(rec.rid).confirmed > 0, what="acks")
    await rig.emu.restart()
    await rig.play(rec, 10)
    rec.close()
    rig.end(rec.cid)
    await _finish(rig)


async def test_server_errors_and_throttling_back_off_then_succeed(rig: Rig) -> None:
    await rig.emu.add_fault(kind="fail", target="grpc", status=503, count=3)
    await rig.emu.add_fault(kind="fail", target="grpc", status=429, count=2)
    live = rig.begin()
    await rig.play(live, 10)
    live.close()
    rig.end(live.cid)
    await _finish(rig)
    await rig.emu.add_fault(kind="fail", target="rest", status=500, count=3)
    await rig.emu.add_fault(kind="fail", target="rest", status=429, count=1)
    await rig.stop_engine()  # a recording made while the device is down and offline
    rig.network("cut")
    offline = rig.begin()
    await rig.play(offline, 10)
    offline.close()
    rig.end(offline.cid)
    await rig.start_engine()
    rig.network("pass")
    await _finish(rig)
    assert await _transports(rig, offline.cid) == ["rest"]
    assert await rig.emu.faults() == []  # every injected failure was met, and survived


async def test_expired_tokens_are_refreshed(make_rig: MakeRig) -> None:
    rig = await make_rig(emulator_settings={"token_lifetime_s": 1})
    await rig.emu.add_fault(kind="fail", target="grpc", status=401, count=1)
    rec = rig.begin()
    await rig.play(rec, 30, interval_s=0.05)  # spans token expiry
    rig.network("reset")  # the reconnect must present a fresh token
    await rig.play(rec, 5)
    rig.network("pass")
    rec.close()
    await rig.wait_recordings_delivered()
    await rig.emu.add_fault(kind="fail", target="rest", status=401, count=1)
    await rig.stop_engine()  # the next recording is made offline: REST, with a stale token
    rig.network("cut")
    offline = rig.begin(rec.cid)
    await rig.play(offline, 5)
    offline.close()
    rig.end(rec.cid)
    await rig.start_engine()
    rig.network("pass")
    await _finish(rig)
    assert await rig.emu.faults() == []  # both 401s were met and answered by a refresh


async def test_forgotten_recording_is_delivered_whole_through_rest(rig: Rig) -> None:
    rec = rig.begin()
    await rig.play(rec, 10)
    await async_poll_until(lambda: rig.spool.recording(rec.rid).confirmed > 0, what="acks")
    rig.network("cut")
    await rig.emu.forget_recording(rec.cid, rec.rid)
    await rig.play(rec, 10)
    rec.close()
    rig.end(rec.cid)
    rig.network("pass")
    rig.wake()
    await _finish(rig)
    assert await _transports(rig, rec.cid) == ["rest"]


async def test_rejected_recording_is_quarantined_not_deleted_and_retry_delivers(
    make_rig: MakeRig,
) -> None:
    rig = await _offline_rig(make_rig)
    await rig.emu.add_fault(kind="fail", target="rest", status=400, count=1, path="storeChunk")
    rec = rig.begin()
    await rig.play(rec, 5)
    rec.close()
    rig.end(rec.cid)
    rig.network("pass")
    rig.wake()
    await async_poll_until(
        lambda: rig.spool.recording(rec.rid).quarantine is not None, what="quarantine"
    )
    info = rig.spool.recording(rec.rid)
    assert "rejected" in (info.quarantine or "")
    assert rig.spool.read(rec.rid, 0, info.length) == bytes(rec.data)  # kept, intact
    assert rig.engine is not None
    error = rig.engine.snapshot().last_error
    assert error is not None and error.code == "delivery_quarantined"
    assert rig.spool.pending_recordings() == []  # not retried forever
    rig.spool.retry(rec.rid)  # what `edge-recorder spool retry` asks for
    rig.wake()
    await _finish(rig)


async def test_engine_restart_mid_live_stream_no_gap_no_duplicate(rig: Rig) -> None:
    rec = rig.begin()
    for _ in range(3):
        await rig.play(rec, 8)
        await async_poll_until(lambda: rig.spool.recording(rec.rid).confirmed > 0)
        await rig.stop_engine()
        await rig.play(rec, 4)  # capture goes on while delivery is down
        await rig.start_engine()
    rec.close()
    rig.end(rec.cid)
    await _finish(rig)


async def test_engine_restart_mid_rest_upload(make_rig: MakeRig) -> None:
    rig = await make_rig(start=False, rest_chunk_bytes=4 * CHUNK)
    rig.network("cut")
    await rig.start_engine()
    rec = rig.begin()
    await rig.play(rec, 40, interval_s=0)
    rec.close()
    rig.end(rec.cid)
    rig.http.slow(64_000, "up")  # ~2 s for the whole upload
    rig.network("pass")
    rig.http.slow(64_000, "up")
    rig.wake()
    await async_poll_until(lambda: rig.http.stats.bytes_up > 40_000, what="upload under way")
    await rig.stop_engine()
    rig.http.pass_through()
    await rig.start_engine()
    await _finish(rig)
    assert await _transports(rig, rec.cid) == ["rest"]


async def test_device_not_allow_listed_is_reported_as_refusing_and_keeps_the_audio(
    make_rig: MakeRig,
) -> None:
    rig = await make_rig(emulator_settings={"allowed_client_ids": frozenset({"someone-else"})})
    rec = rig.begin()
    await rig.play(rec, 5)
    rec.close()
    rig.end(rec.cid)
    await async_poll_until(
        lambda: rig.engine is not None and rig.engine.snapshot().refusing, what="refusal"
    )
    await async_poll_until(lambda: rig.spool.recording(rec.rid).attempts >= 1, what="attempt")
    assert rig.engine is not None
    snapshot = rig.engine.snapshot()
    assert snapshot.last_error is not None and snapshot.last_error.code == "delivery_forbidden"
    assert not snapshot.online
    info = rig.spool.recording(rec.rid)
    assert info.quarantine is None and info.next_attempt_at is not None  # waiting, not given up
    assert rig.spool.read(rec.rid, 0, info.length) == bytes(rec.data)


async def test_session_lost_before_processing_is_delivered_again(rig: Rig) -> None:
    rec = rig.begin()
    await rig.play(rec, 8)
    rec.close()
    await rig.wait_recordings_delivered()
    # the service loses the whole session before the encounter ends (StartProcessing → 404)
    token = await rig.emu.fetch_token()
    async with (
        aiohttp.ClientSession() as http,
        http.delete(
            f"{rig.emu.http_url}/ambient-sessions/{rec.cid}",
            headers={"Authorization": f"Bearer {token}", "x-correlation-id": str(uuid.uuid4())},
        ) as resp,
    ):
        assert resp.status < 300
    rig.end(rec.cid)
    await _finish(rig)
    assert await _transports(rig, rec.cid) == ["rest"]


async def test_a_recording_lost_after_delivery_is_found_and_delivered_again(rig: Rig) -> None:
    """Found by the daemon chaos trials: the service forgets a recording it had confirmed and
    closed; StartProcessing then counts fewer recordings and bytes than the device delivered.
    The answer singles out the lost one (its length alone explains the shortfall): only it goes
    up again, through REST, and StartProcessing follows; the other is not sent twice."""
    first = rig.begin()
    await rig.play(first, 6)
    first.close()
    await rig.wait_recordings_delivered()
    rig.network("cut")
    assert await rig.forget(first)
    second = rig.begin(first.cid)
    await rig.play(second, 9)
    second.close()
    rig.end(first.cid)
    rig.network("pass")
    rig.wake()
    await _finish(rig)
    assert sorted(await _transports(rig, first.cid)) == ["grpc", "rest"]
    session = await rig.emu.session(first.cid)
    assert len(session["recordings"]) == 2  # no duplicate of the one the service kept
    assert rig.spool.encounters_ready_for_processing() == []
    assert rig.processing_calls[first.cid] == 2


async def test_a_lost_recording_the_answer_cannot_single_out_is_kept_not_reclaimed(
    rig: Rig,
) -> None:
    """Two recordings of equal length, one lost: StartProcessing's count and bytes fit either,
    so nothing is guessed; the audio is quarantined with an alert, never reclaimed."""
    first = rig.begin()
    await rig.play(first, 6)
    first.close()
    await rig.wait_recordings_delivered()
    rig.network("cut")
    await rig.emu.forget_recording(first.cid, first.rid)
    second = rig.begin(first.cid)
    await rig.play(second, 6)
    second.close()
    rig.end(first.cid)
    rig.network("pass")
    rig.wake()
    await async_poll_until(
        lambda: rig.spool.recording(first.rid).quarantine is not None, 30, "quarantine"
    )
    for rec in (first, second):
        info = rig.spool.recording(rec.rid)
        assert "audio kept in the spool" in (info.quarantine or "")
        assert rig.spool.read(rec.rid, 0, info.length) == bytes(rec.data)  # nothing reclaimed
    assert rig.spool.encounters_ready_for_processing() == []  # no StartProcessing loop
    assert rig.engine is not None
    error = rig.engine.snapshot().last_error
    assert error is not None and error.code == "delivery_quarantined"
