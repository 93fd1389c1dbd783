"""`edge-recorder run` under systemd's rules: exit 78 on a bad config, READY without a mic,
SIGTERM closes the recording (delivered after the restart), SIGKILL is recovered, SIGHUP
reloads a good config and keeps the old one when the new one is bad."""

from __future__ import annotations

import asyncio
import json
import re
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import soundfile

from tests.conftest import RunCli
from tests.integration.daemon.conftest import (
    DaemonProcess,
    StartDaemon,
    closed_recordings,
    daemon_config,
    expected_bytes,
    wait_for,
    write_config,
)
from tests.support.emulator import EmulatorHandle
from tests.support.mosquitto import free_port


def offline(tree: dict[str, Any]) -> dict[str, Any]:
    """The same device with the service unreachable (nothing listens on those ports)."""
    dead = f"127.0.0.1:{free_port()}"
    aas = dict(tree["aas"], grpc_target=dead, rest_url=f"http://{dead}", ws_url=f"ws://{dead}")
    return dict(tree, aas=aas)


async def record_a_while(daemon: DaemonProcess, min_bytes: int = 64000) -> str:
    code, _, err = await daemon.ctl("start")
    assert code == 0, err

    async def some_audio() -> bool:
        return bool((await daemon.status())["backlog"]["bytes"] > min_bytes)

    await wait_for(some_audio, what="audio in the spool")
    status = await daemon.status()
    assert status["state"] == "recording" and status["online"] is False
    return str(status["correlation_id"])


async def delivered_session(emu: EmulatorHandle, cid: str) -> dict[str, Any]:
    async def done() -> bool:
        try:
            session = await emu.session(cid)
        except LookupError:
            return False
        recs = session["recordings"]
        return (
            bool(recs)
            and all(r["state"] == "finalized" for r in recs)
            and bool(session["processingStarted"])
        )

    await wait_for(done, timeout=30, what=f"delivery of {cid}")
    return await emu.session(cid)


def test_config_error_exits_78_before_touching_the_spool(
    run_cli: RunCli, tmp_path: Path, short_dir: Path, speech_wav: Path
) -> None:
    tree = daemon_config(None, tmp_path, short_dir, speech_wav, audio={"rate": 5})
    config = write_config(tmp_path / "bad.toml", tree)
    result = run_cli("run", "--config", str(config), timeout=30)
    assert result.returncode == 78, result.stderr
    assert "audio.rate" in result.stderr
    assert not (tmp_path / "spool").exists() and not (tmp_path / "spool.key").exists()
    assert not (short_dir / "ctl.sock").exists()

    garbage = tmp_path / "garbage.toml"
    garbage.write_text("[spool\ndir = ")
    result = run_cli("run", "--config", str(garbage), timeout=30)
    assert result.returncode == 78 and "garbage.toml" in result.stderr


@pytest.mark.parametrize("source", ["wav", "alsa"])
async def test_missing_mic_still_sends_ready_with_no_mic_in_status(
    start_daemon: StartDaemon, tmp_path: Path, short_dir: Path, source: str
) -> None:
    tree = daemon_config(None, tmp_path, short_dir, tmp_path / "unplugged.wav")
    if source == "alsa":  # real libasound, a card that is not there
        tree["audio"] = {"source": "alsa", "device": "plughw:CARD=Unplugged,DEV=0"}
    daemon = await start_daemon(write_config(tmp_path / "device.toml", tree))
    ready = await daemon.ready()
    assert "no mic" in ready["STATUS"] and ready["STATUS"].startswith("error")
    status = await daemon.status()
    assert status["state"] == "error" and status["error_reason"] == "no_mic"
    assert status["mic"]["present"] is False and "nplugged" in status["mic"]["last_error"]
    code, _, err = await daemon.ctl("start")
    assert code == 1 and "no microphone" in err
    await daemon.signal(signal.SIGTERM)
    assert await daemon.wait_exit(10) == 0


async def test_watchdog_pings_while_loop_and_capture_make_progress(
    start_daemon: StartDaemon, tmp_path: Path, short_dir: Path, speech_wav: Path
) -> None:
    tree = daemon_config(None, tmp_path, short_dir, speech_wav)
    config = write_config(tmp_path / "device.toml", tree)
    daemon = await start_daemon(config, env={"WATCHDOG_USEC": "1000000"})
    await daemon.ready()
    seen = 0
    for _ in range(3):  # pings every half timeout (0.5 s): three in a row
        await daemon.wait_notify(lambda f: f.get("WATCHDOG") == "1", after=seen)
        seen = len(daemon.notified())
    assert "watchdog ping withheld" not in daemon.log


async def test_sigterm_closes_the_recording_which_is_delivered_after_restart(
    aas_emulator: EmulatorHandle, start_daemon: StartDaemon, tmp_path: Path, short_dir: Path,
    speech_wav: Path,
) -> None:  # fmt: skip
    tree = daemon_config(aas_emulator, tmp_path, short_dir, speech_wav)
    config = write_config(tmp_path / "device.toml", offline(tree))
    first = await start_daemon(config)
    await first.ready()
    cid = await record_a_while(first)

    loop = asyncio.get_running_loop()
    sent = loop.time()
    await first.signal(signal.SIGTERM)
    assert await first.wait_exit(10) == 0
    took = loop.time() - sent
    await first.wait_notify(lambda f: f.get("STOPPING") == "1")
    (closed,) = closed_recordings(first.log)
    assert closed["reason"] == "shutdown" and closed["length"] > 32000
    assert 'msg="encounter closed"' in first.log and "reason=shutdown" in first.log

    write_config(config, tree)  # the service is reachable again
    second = await start_daemon(config)
    await second.ready()
    session = await delivered_session(aas_emulator, cid)
    (rec,) = session["recordings"]
    stored = await aas_emulator.recording_bytes(cid, rec["recordingId"])
    assert stored == expected_bytes(config, closed["start"], closed["end"])
    assert took < 10  # reported, not tuned: systemd's TimeoutStopSec is far longer


async def test_sigkill_mid_recording_is_recovered_and_delivered(
    aas_emulator: EmulatorHandle, start_daemon: StartDaemon, tmp_path: Path, short_dir: Path,
    speech_wav: Path,
) -> None:  # fmt: skip
    tree = daemon_config(aas_emulator, tmp_path, short_dir, speech_wav)
    config = write_config(tmp_path / "device.toml", offline(tree))
    first = await start_daemon(config)
    await first.ready()
    cid = await record_a_while(first)
    assert first.proc is not None
    first.proc.kill()
    await first.wait_exit()
    start = re.search(r'msg="recording audio first frame" \S+ start_frame=(\d+)', first.log)
    assert start is not None and closed_recordings(first.log) == []

    write_config(config, tree)
    second = await start_daemon(config)
    await second.ready()
    assert "recording left open by a crash closed" in second.log
    session = await delivered_session(aas_emulator, cid)
    (rec,) = session["recordings"]
    stored = await aas_emulator.recording_bytes(cid, rec["recordingId"])
    first_frame = int(start[1])
    rate = soundfile.info(str(speech_wav)).samplerate
    covered = first_frame + len(stored) // 2 * rate // 16000 + rate  # +1 s: resampler delay
    whole = expected_bytes(config, first_frame, covered)
    assert len(stored) > 32000 and stored == whole[: len(stored)]  # nothing lost, no gap
    assert (await second.status())["state"] == "idle"


async def test_sighup_keeps_a_bad_config_out_and_applies_a_good_one(
    start_daemon: StartDaemon, tmp_path: Path, short_dir: Path, speech_wav: Path
) -> None:
    tree = daemon_config(None, tmp_path, short_dir, speech_wav)
    config = write_config(tmp_path / "device.toml", tree)
    daemon = await start_daemon(config)
    await daemon.ready()
    code, _, err = await daemon.ctl("start")
    assert code == 0, err

    config.write_text(config.read_text().replace('engine = "energy"', 'engine = "psychic"'))
    await daemon.signal(signal.SIGHUP)
    await daemon.wait_notify(lambda f: f.get("RELOADING") == "1")
    await wait_for(lambda: _has(daemon, "config reload rejected"), what="reload rejected")
    assert "vad.engine" in daemon.log.split("config reload rejected", 1)[1]
    assert (await daemon.status())["state"] == "recording"  # carried on, same encounter

    tree["log"]["level"] = "DEBUG"
    write_config(config, tree)
    await daemon.signal(signal.SIGHUP)
    await wait_for(lambda: _has(daemon, 'msg="config reloaded" changed=log'), what="reload")
    assert 'logger=control.server msg="control command" cmd=status' not in daemon.log
    await daemon.status()  # status commands are logged at DEBUG: visible only now
    await wait_for(
        lambda: _has(daemon, 'level=debug logger=control.server msg="control command" cmd=status'),
        what="a debug line",
    )
    reloads = [i for i, f in enumerate(daemon.notified()) if f.get("RELOADING") == "1"]
    assert len(reloads) == 2  # each followed by READY=1 (also the rejected one)
    await daemon.wait_notify(lambda f: f.get("READY") == "1", after=reloads[1])
    assert (await daemon.status())["state"] == "recording"


async def _has(daemon: DaemonProcess, text: str) -> bool:
    return text in daemon.log


def test_check_probe_runs_the_mic_and_service_probes(
    aas_emulator: EmulatorHandle, tmp_path: Path, short_dir: Path, speech_wav: Path
) -> None:
    """`check --probe` imports the probe modules, so the mic and AAS rows appear."""
    tree = daemon_config(aas_emulator, tmp_path, short_dir, speech_wav)
    config = write_config(tmp_path / "device.toml", offline(tree))
    result = subprocess.run(
        [sys.executable, "-m", "edge_recorder", "check", "--probe", "--config", str(config)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    rows = {line[6:27].strip(): line[:4].strip() for line in result.stdout.splitlines()}
    assert "source = wav: no microphone to probe" in result.stdout, result.stdout
    assert any(name.startswith("aas") and mark == "FAIL" for name, mark in rows.items()), rows
    assert result.returncode == 1  # the service is unreachable: the probe says so


async def test_ehr_context_of_a_start_reaches_the_service_after_an_outage_and_restart(
    aas_emulator: EmulatorHandle, start_daemon: StartDaemon, tmp_path: Path, short_dir: Path,
    speech_wav: Path,
) -> None:  # fmt: skip
    """`ctl start --context-json` names the practitioner and EHR instance. The encounter is
    recorded offline and the daemon restarted before the service is reachable: the context,
    sealed in the spool, still goes with the audio, and is gone (with the audio) afterwards."""
    tree = daemon_config(aas_emulator, tmp_path, short_dir, speech_wav)
    config = write_config(tmp_path / "device.toml", offline(tree))
    first = await start_daemon(config)
    await first.ready()
    context_file = tmp_path / "context.json"  # a file (or stdin): PHI never goes in argv
    context_file.write_text(
        json.dumps({"external_user_id": "dr-jane-4711", "ehr_instance_id": "ehr-west-2"})
    )
    code, out, err = await first.ctl("start", "--context-json", str(context_file))
    assert code == 0, err
    cid = json.loads(out)["data"]["correlation_id"]

    async def some_audio() -> bool:
        return bool((await first.status())["backlog"]["bytes"] > 64000)

    await wait_for(some_audio, what="audio in the spool")
    code, _, err = await first.ctl("stop")
    assert code == 0, err
    await first.signal(signal.SIGTERM)
    assert await first.wait_exit(10) == 0
    sealed = list((tmp_path / "spool" / "context").glob("*.enc"))
    assert len(sealed) == 1 and b"dr-jane" not in sealed[0].read_bytes()

    write_config(config, tree)  # the service is reachable again
    second = await start_daemon(config)
    await second.ready()
    session = await delivered_session(aas_emulator, cid)
    assert session["externalUserId"] == "dr-jane-4711"  # not the configured one
    assert session["externalUserId"] != tree["aas"]["external_user_id"]
    assert session["ehrInstanceId"] == "ehr-west-2"

    async def context_gone() -> bool:
        return not list((tmp_path / "spool" / "context").glob("*.enc"))

    await wait_for(context_gone, what="the sealed context removed with the audio")
    for log in (first.log, second.log):
        assert "dr-jane" not in log and "ehr-west" not in log
