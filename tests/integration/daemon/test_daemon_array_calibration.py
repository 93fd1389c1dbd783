"""`edge-recorder run` with audio.array_processing = "calibrated" and no usable calibration:
the daemon says so at start-up (one WARNING naming the file and the fallback, none repeated
by the recordings), shows it in its status, and records with the fallback beam."""

from __future__ import annotations

from pathlib import Path

from tests.integration.daemon.conftest import StartDaemon, daemon_config, write_config
from tests.integration.daemon.test_daemon_array import PROFILE, array_wav  # noqa: F401
from tests.support.helpers import wait_for


async def test_a_missing_calibration_is_reported_at_start_and_in_the_status(
    start_daemon: StartDaemon,
    tmp_path: Path,
    short_dir: Path,
    array_wav: Path,  # noqa: F811
) -> None:
    missing = tmp_path / "array-calibration.npz"
    tree = daemon_config(None, tmp_path, short_dir, array_wav)
    tree["audio"].update(
        profile=PROFILE, array_processing="calibrated", array_calibration=str(missing)
    )
    daemon = await start_daemon(write_config(tmp_path / "device.toml", tree))
    await daemon.ready()
    warning = f"array calibration not used: {missing} does not exist"
    assert daemon.log.count(warning) == 1, daemon.log[-3000:]
    assert "using mvdr-wpe-postfilter" in daemon.log
    assert "array_calibration_fallback" in (await daemon.status())["warnings"]
    code, _out, err = await daemon.ctl("start")
    assert code == 0, err

    async def recording() -> bool:
        return "recording audio first frame" in daemon.log

    await wait_for(recording, what="the first recorded frame")
    code, _out, err = await daemon.ctl("stop")
    assert code == 0, err
    await daemon.wait_state("idle")
    assert daemon.log.count(warning) == 1  # the same reason is not logged per recording
    assert "array_calibration_fallback" in (await daemon.status())["warnings"]
