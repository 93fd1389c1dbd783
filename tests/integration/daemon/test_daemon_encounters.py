"""`edge-recorder run` end to end: ctl and mocked buttons record encounters that reach the
emulator byte for byte, with the LEDs following the documented table."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile

from edge_recorder.panel.patterns import PATTERNS
from tests.integration.daemon.conftest import (
    StartDaemon,
    closed_recordings,
    daemon_config,
    expected_bytes,
    pcm_rms,
    wait_for,
    write_config,
)
from tests.support.emulator import EmulatorHandle


async def delivered(emu: EmulatorHandle, cid: str, count: int) -> dict[str, Any] | None:
    """The emulator's session once `count` recordings are finalized and processing started."""
    try:
        session = await emu.session(cid)
    except LookupError:
        return None
    recs = session["recordings"]
    done = len(recs) == count and all(r["state"] == "finalized" for r in recs)
    return session if done and session["processingStarted"] else None


async def assert_holds_exact_audio(
    emu: EmulatorHandle, cid: str, config: Path, log: str
) -> list[dict[str, Any]]:
    """Every recording the daemon closed is in the emulator, equal to the pipeline's output
    for the WAV frames it covered (computed independently here). A recording delivered live
    is known by its id; one the backlog delivered over REST by its number in the encounter
    (which of the two carries a short last recording is a race between the live stream and
    the stop, so both are accepted)."""
    session = await emu.session(cid)
    in_order = closed_recordings(log)
    closed = {c["id"]: c for c in in_order}
    out = []
    for rec in session["recordings"]:
        mine = closed.get(rec["recordingId"])
        if mine is None and rec["transport"] == "rest" and str(rec["recordingId"]).isdigit():
            mine = in_order[int(rec["recordingId"]) - 1]
        assert mine is not None, (rec["recordingId"], list(closed))
        stored = await emu.recording_bytes(cid, rec["recordingId"])
        assert len(stored) == mine["length"] > 0
        assert stored == expected_bytes(config, mine["start"], mine["end"])
        out.append(mine)
    return out


async def test_ctl_start_status_stop_delivers_the_exact_audio(
    aas_emulator: EmulatorHandle, start_daemon: StartDaemon, tmp_path: Path, short_dir: Path,
    speech_wav: Path,
) -> None:  # fmt: skip
    config = write_config(
        tmp_path / "device.toml", daemon_config(aas_emulator, tmp_path, short_dir, speech_wav)
    )
    daemon = await start_daemon(config)
    ready = await daemon.ready()
    assert ready["STATUS"].startswith("idle")

    cid = await daemon.start_encounter()
    await daemon.wait_notify(lambda f: "recording #1" in f.get("STATUS", ""))
    code, out, err = await daemon.ctl("status")
    assert code == 0, err
    shown = json.loads(out)
    assert shown["state"] == "recording" and shown["correlation_id"] == cid
    assert shown["mic"]["present"] is True and shown["mic"]["device"].startswith("wav:")

    async def some_audio_live() -> bool:  # the live stream carries audio while recording
        try:
            recs = (await aas_emulator.session(cid))["recordings"]
        except LookupError:
            return False
        return bool(recs) and recs[0]["bytes"] > 64000

    await wait_for(some_audio_live, what="live audio at the emulator")
    code, out, err = await daemon.ctl("pause")
    assert code == 0 and json.loads(out)["state"] == "paused", err
    code, out, err = await daemon.ctl("resume")
    assert code == 0 and json.loads(out)["data"]["recording_seq"] == 2, err
    await daemon.wait_notify(lambda f: "recording #2" in f.get("STATUS", ""))
    paused_at = (await daemon.status())["backlog"]["bytes"]

    async def more_audio() -> bool:
        return bool((await daemon.status())["backlog"]["bytes"] > paused_at + 32000)

    await wait_for(more_audio, what="audio in recording #2")
    code, out, err = await daemon.ctl("stop")
    assert code == 0, err
    assert json.loads(out)["state"] == "stopping"
    await daemon.wait_state("idle")

    async def done() -> bool:
        return await delivered(aas_emulator, cid, 2) is not None

    await wait_for(done, what="recordings finalized and processing started")
    recs = await assert_holds_exact_audio(aas_emulator, cid, config, daemon.log)
    assert [r["reason"] for r in recs] == ["pause", "stop"]
    assert recs[0]["end"] <= recs[1]["start"]  # the pause is not in either recording
    first = (await aas_emulator.session(cid))["recordings"][0]["recordingId"]
    stored = await aas_emulator.recording_bytes(cid, first)
    assert pcm_rms(stored) > 100  # speech, not silence
    assert cid not in daemon.log  # the correlation id may be EHR data: never logged


async def sim(daemon: Any, **body: Any) -> dict[str, Any]:
    reply: dict[str, Any] = await daemon.request({"cmd": "sim", **body})
    assert reply["ok"], reply
    return dict(reply["data"])


def rgb_at(pins: dict[str, list[list[float]]], led_pins: list[int], t: float) -> tuple[float, ...]:
    """The RGB value the mock LED pins held at monotonic time `t`."""
    values = []
    for pin in led_pins:
        value = 0.0
        for at, state in pins[str(pin)]:
            if at <= t:
                value = state
        values.append(value)
    return tuple(values)


def assert_leds_follow_the_table(history: dict[str, Any], led_pins: list[int]) -> None:
    """Between two indicator changes the RGB pins show exactly the table's pattern: a solid
    colour held to the end, or a blink between its two colours (checked once each burst of
    per-channel writes has settled)."""
    pins = history["pins"]
    ends = [t for t, _ in history["indicators"][1:]] + [history["now"]]
    changes = sorted(at for pin in led_pins for at, _ in pins[str(pin)])
    for (t, name), end in zip(history["indicators"], ends, strict=True):
        light = PATTERNS[name].rgb
        if light.solid:
            assert rgb_at(pins, led_pins, end - 1e-6) == pytest.approx(light.on), name
            continue
        inside = [at for at in changes if t <= at < end]
        nexts = [*inside[1:], end][: len(inside)]
        settled = [a for a, b in zip(inside, nexts, strict=True) if b - a > 0.005]
        for at in settled:
            shown = rgb_at(pins, led_pins, at)
            assert shown in (pytest.approx(light.on), pytest.approx(light.off)), (name, shown)


async def test_mocked_button_presses_record_and_the_leds_follow_the_table(
    aas_emulator: EmulatorHandle, start_daemon: StartDaemon, tmp_path: Path, short_dir: Path,
    speech_wav: Path,
) -> None:  # fmt: skip
    tree = daemon_config(aas_emulator, tmp_path, short_dir, speech_wav, panel={"buzzer_pin": 18})
    config = write_config(tmp_path / "device.toml", tree)
    led_pins = tree.get("panel", {}).get("led_pins", [5, 6, 13])
    daemon = await start_daemon(config)
    await daemon.ready()

    await sim(daemon, press="record")
    status = await daemon.wait_state("recording")
    cid = status["correlation_id"]
    await daemon.wait_notify(lambda f: "recording #1" in f.get("STATUS", ""))

    async def some_audio_live() -> bool:  # and the press is long past the debounce time
        return bool((await daemon.status())["backlog"]["bytes"] > 64000)

    await wait_for(some_audio_live, what="audio in the spool")
    await sim(daemon, press="record", hold_s=0.1)
    await daemon.wait_state("idle")

    async def done() -> bool:
        return await delivered(aas_emulator, cid, 1) is not None

    await wait_for(done, what="delivery of the button-made encounter")
    await assert_holds_exact_audio(aas_emulator, cid, config, daemon.log)

    history = await sim(daemon, led_history=True)
    shown = [name for _, name in history["indicators"]]
    assert shown[:3] == ["idle", "recording", "stopping"], shown
    pins = history["pins"]
    assert_leds_follow_the_table(history, led_pins)
    # recording: red switched on once and never off until the encounter stopped
    t_rec, t_stop = history["indicators"][1][0], history["indicators"][2][0]
    red = [(at, v) for at, v in pins[str(led_pins[0])] if t_rec - 1e-6 <= at < t_stop]
    assert [v for _, v in red] == [1.0], red
    bad = await daemon.request({"cmd": "sim", "press": "elbow"})
    assert bad["ok"] is False and "record or privacy" in bad["error"]


def quiet_wav(path: Path, level: float, seconds: float = 120.0) -> Path:
    """16 kHz noise at `level` (0 = digital silence: a dead or muted mic)."""
    rng = np.random.default_rng(3)
    samples = (rng.standard_normal(int(16000 * seconds)) * level).astype(np.float32)
    soundfile.write(str(path), samples, 16000, subtype="PCM_16")
    return path


async def test_no_speech_warns_then_auto_stops_the_encounter(
    start_daemon: StartDaemon, tmp_path: Path, short_dir: Path
) -> None:
    wav = quiet_wav(tmp_path / "room-tone.wav", level=0.003)  # a quiet room, nobody talking
    vad = {"engine": "energy", "auto_stop_after_s": 3.0, "auto_stop_warning_s": 1.5}
    tree = daemon_config(None, tmp_path, short_dir, wav, vad=vad)
    daemon = await start_daemon(write_config(tmp_path / "device.toml", tree))
    await daemon.ready()
    code, _, err = await daemon.ctl("start")
    assert code == 0, err
    warned = await daemon.wait_state("recording")
    assert warned["alarms"] == []

    async def warning_shown() -> bool:
        return "auto_stop" in (await daemon.status())["warnings"]

    await wait_for(warning_shown, what="the auto-stop warning")
    await daemon.wait_state("idle")
    assert 'msg="encounter warning" kind=auto_stop' in daemon.log
    (closed,) = closed_recordings(daemon.log)
    assert closed["reason"] == "no_speech"
    shown = [name for _, name in (await sim(daemon, led_history=True))["indicators"]]
    assert shown[:4] == ["idle", "recording", "recording_warning", "stopping"], shown


async def test_a_dead_mic_raises_the_silence_alarm_while_recording_continues(
    start_daemon: StartDaemon, tmp_path: Path, short_dir: Path
) -> None:
    wav = quiet_wav(tmp_path / "zeros.wav", level=0.0)
    tree = daemon_config(None, tmp_path, short_dir, wav, audio={"digital_silence_s": 1.0})
    daemon = await start_daemon(write_config(tmp_path / "device.toml", tree))
    await daemon.ready()
    code, _, err = await daemon.ctl("start")
    assert code == 0, err

    async def alarmed() -> bool:
        status = await daemon.status()
        return "mic_silent" in status["alarms"] and status["mic"]["digital_silence"]

    await wait_for(alarmed, what="the mic_silent alarm")
    status = await daemon.status()
    assert status["state"] == "recording" and status["recording_seq"] == 1
    shown = [name for _, name in (await sim(daemon, led_history=True))["indicators"]]
    assert shown[-1] == "recording_alarm", shown


async def test_hold_to_pause_privacy_to_resume_and_tap_to_stop(
    aas_emulator: EmulatorHandle, start_daemon: StartDaemon, tmp_path: Path, short_dir: Path,
    speech_wav: Path,
) -> None:  # fmt: skip
    panel = {"hold_action": "pause", "hold_time_s": 0.3, "privacy_button_pin": 27}
    tree = daemon_config(aas_emulator, tmp_path, short_dir, speech_wav, panel=panel)
    config = write_config(tmp_path / "device.toml", tree)
    daemon = await start_daemon(config)
    await daemon.ready()

    await sim(daemon, press="record", hold_s=0.1)  # a tap: acts on release
    cid = (await daemon.wait_state("recording"))["correlation_id"]
    await wait_for(lambda: _more_than(daemon, 1, 32000), what="audio in recording #1")
    await sim(daemon, press="record", hold_s=0.6)  # held past hold_time_s: pause
    await daemon.wait_state("paused")
    await sim(daemon, press="privacy")
    resumed = await daemon.wait_state("recording")
    assert resumed["recording_seq"] == 2
    spooled = resumed["backlog"]["bytes"] + 32000
    await wait_for(lambda: _more_than(daemon, 2, spooled), what="audio in recording #2")
    await sim(daemon, press="record", hold_s=0.1)
    await daemon.wait_state("idle")

    async def done() -> bool:
        return await delivered(aas_emulator, cid, 2) is not None

    await wait_for(done, what="both recordings delivered")
    recs = await assert_holds_exact_audio(aas_emulator, cid, config, daemon.log)
    assert [r["reason"] for r in recs] == ["pause", "stop"]
    history = await sim(daemon, led_history=True)
    shown = [name for _, name in history["indicators"]]
    assert shown[:5] == ["idle", "recording", "paused", "recording", "stopping"], shown
    assert_leds_follow_the_table(history, [5, 6, 13])


async def _more_than(daemon: Any, seq: int, spooled: int) -> bool:
    """Recording `seq` is open and the spool holds more than `spooled` bytes (presses
    further apart than the debounce time, as a person's are)."""
    status = await daemon.status()
    return bool(status["recording_seq"] == seq and status["backlog"]["bytes"] > spooled)


@pytest.fixture
def wav16(speech_wav: Path, tmp_path: Path) -> Path:
    """The speech as 16 kHz mono PCM16: the rate and format the service stores."""
    out = tmp_path / "speech-16k.wav"
    subprocess.run(
        ["sox", str(speech_wav), "-r", "16000", "-c", "1", "-b", "16", str(out)], check=True
    )
    return out


async def test_stored_pcm_equals_the_source_wav_sample_for_sample(
    aas_emulator: EmulatorHandle, start_daemon: StartDaemon, tmp_path: Path, short_dir: Path,
    wav16: Path,
) -> None:  # fmt: skip
    """With a 16 kHz mono source and no DC removal or gain the pipeline must not touch a
    sample: what the service stores is the source WAV itself, frame range for frame range."""
    tree = daemon_config(aas_emulator, tmp_path, short_dir, wav16)
    tree["audio"]["dc_removal"] = False
    config = write_config(tmp_path / "device.toml", tree)
    daemon = await start_daemon(config)
    await daemon.ready()
    cid = await daemon.start_encounter()

    async def some_audio() -> bool:
        return bool((await daemon.status())["backlog"]["bytes"] > 64000)

    await wait_for(some_audio, what="audio in the recording")
    code, _, err = await daemon.ctl("stop")
    assert code == 0, err

    async def done() -> bool:
        return await delivered(aas_emulator, cid, 1) is not None

    await wait_for(done, what="the recording finalized and processing started")
    (closed,) = closed_recordings(daemon.log)
    stored = await aas_emulator.recording_bytes(cid, closed["id"])
    source, rate = soundfile.read(wav16, dtype="int16")
    assert rate == 16000 and len(stored) > 64000
    assert stored == source[closed["start"] : closed["end"]].tobytes()
