"""`edge-recorder run` against the AAS emulator at `fidelity = "live"` (RecordAmbient answered
by nothing, as observed live), across a network cut: the daemon says why live delivery
stopped, keeps recording, and the encounter reaches the service byte-exact over REST."""

from __future__ import annotations

import json
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
        tree["aas"].update(
            grpc_target=f"127.0.0.1:{grpc.port}", rest_url=f"http://127.0.0.1:{http.port}"
        )
        tree["auth"]["token_url"] = f"http://127.0.0.1:{http.port}/oauth2/token"
        config = write_config(tmp_path / "device.toml", tree)
        daemon = await start_daemon(config)
        await daemon.ready()
        code, out, err = await daemon.ctl("start")
        assert code == 0, err
        cid = json.loads(out)["data"]["correlation_id"]

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
