"""`edge-recorder run` against the AAS emulator at `fidelity = "live"` (RecordAmbient answered
by nothing, as observed live), across a network cut: the daemon says why live delivery
stopped, keeps recording, and the encounter reaches the service byte-exact over REST."""

from __future__ import annotations

from pathlib import Path

from devtools.faultproxy import FaultProxy
from tests.integration.daemon.conftest import (
    StartDaemon,
    closed_recordings,
    daemon_config,
    expected_bytes,
    record_offline_then_deliver,
    wait_for,
    write_config,
)
from tests.integration.daemon.test_daemon_encounters import delivered
from tests.support.emulator import MakeEmulator


def port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


async def test_a_silent_live_service_gets_the_encounter_byte_exact_across_a_cut(
    make_aas_emulator: MakeEmulator, start_daemon: StartDaemon, tmp_path: Path,
    short_dir: Path, speech_wav: Path,
) -> None:  # fmt: skip
    emu = await make_aas_emulator(fidelity="live")
    grpc = await FaultProxy("127.0.0.1", port_of(emu.grpc_target)).start()
    http = await FaultProxy("127.0.0.1", port_of(emu.http_url)).start()
    try:
        tree = daemon_config(emu, tmp_path, short_dir, speech_wav)
        del tree["auth"]["delegated_token_file"]  # a site without one: app-only token only
        tree["uplink"]["live_transport"] = "grpc"
        tree["aas"].update(
            grpc_target=f"127.0.0.1:{grpc.port}", rest_url=f"http://127.0.0.1:{http.port}"
        )
        tree["auth"]["token_url"] = f"http://127.0.0.1:{http.port}/oauth2/token"
        config = write_config(tmp_path / "device.toml", tree)
        daemon = await start_daemon(config)
        await daemon.ready()
        cid = await daemon.start_encounter()

        async def live_given_up() -> bool:
            error = (await daemon.status()).get("last_error") or {}
            return bool(error.get("code") == "delivery_live_silent")

        await wait_for(live_given_up, timeout=40, what="delivery_live_silent in the status")

        class BothLinks:  # the device's one network: both proxies go down and up together
            def cut(self) -> None:
                grpc.cut()
                http.cut()

            def pass_through(self) -> None:
                grpc.pass_through()
                http.pass_through()

        await record_offline_then_deliver(daemon, BothLinks(), min_bytes=32000)

        async def done() -> bool:
            return await delivered(emu, cid, 2) is not None

        await wait_for(done, timeout=40, what="both recordings finalized, processing started")
        session = await emu.session(cid)
        assert [r["transport"] for r in session["recordings"]] == ["rest", "rest"]
        # REST knows recordings by their number in the encounter: the n-th one closed.
        for seq, mine in enumerate(closed_recordings(daemon.log), start=1):
            stored = await emu.recording_bytes(cid, seq)
            assert len(stored) == mine["length"] > 0
            assert stored == expected_bytes(config, mine["start"], mine["end"])
    finally:
        await grpc.stop()
        await http.stop()


async def test_a_delegated_websocket_streams_live_and_a_cut_sends_the_rest_over_rest(
    make_aas_emulator: MakeEmulator, start_daemon: StartDaemon, tmp_path: Path,
    short_dir: Path, speech_wav: Path,
) -> None:  # fmt: skip
    """The site has a delegated token: the WebSocket streams with no open answer (acks prove
    delivery). A cut breaks the stream, which cannot be resumed at an offset without the
    server's word on what it holds: that recording, and the one made offline, go through REST
    whole. No alarm: the service did answer."""
    emu = await make_aas_emulator()  # live fidelity: the default for tests of the device
    http = await FaultProxy("127.0.0.1", port_of(emu.http_url)).start()
    try:
        tree = daemon_config(emu, tmp_path, short_dir, speech_wav)
        assert tree["uplink"]["live_transport"] == "websocket"
        tree["aas"].update(
            rest_url=f"http://127.0.0.1:{http.port}", ws_url=f"ws://127.0.0.1:{http.port}"
        )
        tree["auth"]["token_url"] = f"http://127.0.0.1:{http.port}/oauth2/token"
        config = write_config(tmp_path / "device.toml", tree)
        daemon = await start_daemon(config)
        await daemon.ready()
        cid = await daemon.start_encounter()

        async def streaming() -> bool:
            try:
                recs = (await emu.session(cid))["recordings"]
            except LookupError:
                return False
            return bool(recs and recs[0]["transport"] == "ws" and recs[0]["bytes"] > 16000)

        await wait_for(streaming, timeout=30, what="the live WebSocket acknowledging audio")
        await record_offline_then_deliver(daemon, http, min_bytes=32000)

        async def done() -> bool:
            session = await emu.session(cid)
            rest = [r for r in session["recordings"] if r["transport"] == "rest"]
            return (
                len(rest) == 2
                and all(r["state"] == "finalized" for r in rest)
                and bool(session["processingStarted"])
            )

        await wait_for(done, timeout=40, what="both recordings finalized over REST")
        for seq, mine in enumerate(closed_recordings(daemon.log), start=1):
            stored = await emu.recording_bytes(cid, seq)
            assert len(stored) == mine["length"] > 0
            assert stored == expected_bytes(config, mine["start"], mine["end"])
        session = await emu.session(cid)  # the broken live copy is replaced, not processed
        assert [r["state"] for r in session["recordings"] if r["transport"] == "ws"] == [
            "superseded"
        ]
        status = await daemon.status()
        assert "live_silent" not in status["alarms"]
        assert 'msg="live delivery silent' not in daemon.log
    finally:
        await http.stop()
