"""The engine against the emulator at `fidelity = "live"`: RecordAmbient gets no answer at all,
as a public client observed the live service. Nothing may hang and nothing may be lost: a live
stream that gets no answer at all is given up and the recording goes through REST
store-and-forward, across a network cut, with the `live_silent` alarm raised."""

from __future__ import annotations

from tests.chaos.rig import Rig
from tests.integration.delivery.conftest import MakeRig
from tests.support.helpers import async_poll_until


async def test_a_silent_live_service_gets_the_encounter_byte_exact_over_rest(
    make_rig: MakeRig,
) -> None:
    rig: Rig = await make_rig(emulator_settings={"fidelity": "live"})
    rec = rig.begin()
    await rig.play(rec, 10)
    assert rig.engine is not None
    engine = rig.engine
    await async_poll_until(
        lambda: rec.rid in engine.context.work.rest_only, timeout=20, what="live given up"
    )
    snap = engine.snapshot()
    assert snap.last_error is not None and snap.last_error.code == "delivery_live_silent"
    assert snap.live_silent
    rig.network("cut")
    await rig.play(rec, 10)  # recorded during the outage: spooled, not lost
    rec.close()
    rig.end(rec.cid)
    rig.network("pass")
    await rig.wait_processed(30)
    assert await rig.verify() == []
    session = await rig.emu.session(rec.cid)
    assert [r["transport"] for r in session["recordings"]] == ["rest"]


async def test_a_silent_live_websocket_also_ends_in_rest(make_rig: MakeRig) -> None:
    """Over the WebSocket transport the live service is silent to app-only tokens."""
    rig: Rig = await make_rig(emulator_settings={"fidelity": "live"}, live_transport="websocket")
    rec = rig.begin()
    await rig.play(rec, 10)
    assert rig.engine is not None
    engine = rig.engine
    await async_poll_until(
        lambda: rec.rid in engine.context.work.rest_only, timeout=20, what="live given up"
    )
    rec.close()
    rig.end(rec.cid)
    await rig.wait_processed(30)
    assert await rig.verify() == []
