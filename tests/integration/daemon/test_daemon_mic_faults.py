"""Mic faults in the real daemon through real libasound: the `file` plugin reads a FIFO the
test feeds (see alsa_feed), and an LD_PRELOAD shim over snd_pcm_open/readi injects an unplug,
a busy device and overruns at known read numbers. The tests check what an installer and the
service see: state, status, alarm, LED pattern, back-off, recordings and their bytes."""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from edge_recorder.audio.frames import AudioFormat, Frames
from edge_recorder.audio.pipeline import Pipeline
from edge_recorder.config.loader import load_config
from tests.integration.daemon.alsa_feed import (
    FRAME_BYTES,
    PERIOD_FRAMES,
    RATE,
    MicFeed,
    build_shim,
    mic_audio,
    mic_env,
    shim_events,
)
from tests.integration.daemon.conftest import (
    DaemonProcess,
    StartDaemon,
    closed_recordings,
    daemon_config,
    wait_for,
    write_config,
)
from tests.support.emulator import EmulatorHandle

BACKOFF_S = 0.5  # AlsaSource's first re-open delay; audio.reopen_backoff_max_s caps it here


@pytest.fixture(scope="session")
def fault_shim(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_shim(tmp_path_factory.mktemp("shim") / "alsa_fault_shim.so")


@pytest.fixture
def mic(tmp_path: Path) -> Iterator[MicFeed]:
    feed = MicFeed(tmp_path / "mic.fifo", mic_audio(30.0))
    yield feed
    feed.close()


def alsa_config(
    emu: EmulatorHandle, tmp_path: Path, sock_dir: Path, mic: MicFeed, backoff_max_s: float
) -> Path:
    tree = daemon_config(
        emu, tmp_path, sock_dir, tmp_path / "unused.wav",
        audio={
            "source": "alsa", "device": f"fakemic:{mic.fifo}", "rate": RATE, "channels": 1,
            "format": "S16_LE", "period_ms": 20, "reopen_backoff_max_s": backoff_max_s,
        },
    )  # fmt: skip
    return write_config(tmp_path / "device.toml", tree)


async def session_done(emu: EmulatorHandle, cid: str, count: int) -> bool:
    try:
        recs = (await emu.session(cid))["recordings"]
    except LookupError:
        return False
    return len(recs) == count and all(r["state"] == "finalized" for r in recs)


async def start_encounter(daemon: DaemonProcess) -> str:
    """Start right after READY (over the socket: no client start-up time), well before the
    first injected fault's read number (the shim paces reads: read N comes at N x 20 ms)."""
    await daemon.ready()
    reply = await daemon.request({"cmd": "start"})
    assert reply["ok"] and reply["state"] == "recording", reply
    return str(reply["data"]["correlation_id"])


async def stop_and_deliver(
    daemon: DaemonProcess, emu: EmulatorHandle, cid: str, count: int
) -> list[dict[str, Any]]:
    code, _, err = await daemon.ctl("stop")
    assert code == 0, err
    await daemon.wait_state("idle")

    async def done() -> bool:
        return await session_done(emu, cid, count)

    await wait_for(done, what=f"{count} recordings finalized at the emulator")
    return list((await emu.session(cid))["recordings"])


def times(events: list[tuple[str, float]], prefix: str) -> list[float]:
    return [t for text, t in events if text.startswith(prefix)]


async def test_unplug_keeps_the_encounter_raises_the_alarm_and_resumes_in_a_new_recording(
    aas_emulator: EmulatorHandle, start_daemon: StartDaemon, tmp_path: Path, short_dir: Path,
    fault_shim: Path, mic: MicFeed,
) -> None:  # fmt: skip
    shim_log = tmp_path / "shim.log"
    config = alsa_config(aas_emulator, tmp_path, short_dir, mic, backoff_max_s=2 * BACKOFF_S)
    # read 150 (3 s of audio) finds the device gone; the next three opens find nothing
    env = mic_env(
        fault_shim, shim_log, SHIM_READ_FAIL="150-150:ENODEV", SHIM_OPEN_FAIL="2-4:ENOENT"
    )
    daemon = await start_daemon(config, env=env)
    cid = await start_encounter(daemon)
    assert (await daemon.status())["mic"]["present"] is True

    async def mic_gone() -> bool:
        return not (await daemon.status())["mic"]["present"]

    await wait_for(mic_gone, what="the unplug to show in status")
    # the encounter stays open, interrupted, with the mic alarm (status over the socket:
    # the outage lasts ~2.5 s of back-off, too short to bet on a client's start-up time)
    status = await daemon.status()
    assert status["state"] == "error" and status["error_reason"] == "no_mic", status
    assert status["correlation_id"] == cid
    assert "no_mic" in status["alarms"]
    assert status["mic"]["present"] is False
    assert "disappeared" in status["mic"]["last_error"]

    async def first_closed() -> bool:  # the audio thread seals recording #1 at the unplug
        return len(closed_recordings(daemon.log)) == 1

    await wait_for(first_closed, what="recording #1 closed")
    assert (await daemon.status())["state"] == "error"  # still interrupted, not recording

    async def recording_again() -> bool:
        status = await daemon.status()
        return bool(status["state"] == "recording" and status["mic"]["present"])

    await wait_for(recording_again, what="capture to resume")
    status = await daemon.status()
    assert status["correlation_id"] == cid and status["recording_seq"] == 2
    assert status["alarms"] == []
    backlog = status["backlog"]["bytes"]

    async def more_audio() -> bool:
        return bool((await daemon.status())["backlog"]["bytes"] > backlog + 16000)

    await wait_for(more_audio, what="audio in recording #2")
    recs = await stop_and_deliver(daemon, aas_emulator, cid, 2)
    assert [r["bytes"] > 0 for r in recs] == [True, True]

    closed = closed_recordings(daemon.log)
    assert [c["reason"] for c in closed] == ["mic_lost", "stop"]
    assert closed[0]["end"] == 149 * PERIOD_FRAMES  # the 149 reads before the unplug
    # the gap is reported (log) and is on the timeline between the two recordings
    outage = re.search(r'msg="mic back" device=\S+ outage_s=(?P<s>[\d.]+)', daemon.log)
    assert outage is not None, daemon.log[-3000:]
    outage_s = float(outage["s"])
    assert outage_s >= 5 * BACKOFF_S
    assert closed[1]["start"] - closed[0]["end"] >= round(outage_s * RATE) - 1

    # back-off between re-opens, and the alarm (LED pattern) within 2 s of the unplug
    events = shim_events(shim_log)
    [unplug] = times(events, "read-fail 150")
    attempts = times(events, "open")
    assert len(attempts) == 5  # first open, three "not found", the re-open that worked
    waits = [b - a for a, b in zip([unplug, *attempts[1:-1]], attempts[1:], strict=True)]
    floors = [BACKOFF_S, 2 * BACKOFF_S, 2 * BACKOFF_S, 2 * BACKOFF_S]  # doubled, then capped
    assert all(w >= f - 0.01 for w, f in zip(waits, floors, strict=True)), waits
    reply = await daemon.request({"cmd": "sim", "led_history": True})
    assert reply["ok"], reply
    indicators = [(t, name) for t, name in reply["data"]["indicators"]]
    before = [name for t, name in indicators if t < unplug]
    after = [(t, name) for t, name in indicators if t >= unplug]
    assert before[-1] == "recording", indicators
    assert after[0][1] == "error", indicators  # the mic alarm pattern
    assert after[0][0] - unplug < 2.0
    assert after[1][1] == "recording", indicators  # the light is back on after the outage


async def test_busy_mic_at_start_names_the_cause_and_is_retried_with_backoff(
    aas_emulator: EmulatorHandle, start_daemon: StartDaemon, tmp_path: Path, short_dir: Path,
    fault_shim: Path, mic: MicFeed,
) -> None:  # fmt: skip
    shim_log = tmp_path / "shim.log"
    config = alsa_config(aas_emulator, tmp_path, short_dir, mic, backoff_max_s=4.0)
    # another process holds the mic for the first two opens
    daemon = await start_daemon(
        config, env=mic_env(fault_shim, shim_log, SHIM_OPEN_FAIL="1-2:EBUSY")
    )
    ready = await daemon.ready()
    # READY still goes out (no crash loop), and says why there is no mic
    assert "no mic" in ready["STATUS"] and "busy" in ready["STATUS"], ready
    lost = re.search(r'msg="mic lost" device=\S+ reason=(\S+) detail="([^"]*)"', daemon.log)
    assert lost is not None, daemon.log[-3000:]
    assert lost[1] == "busy"
    assert "busy: another process holds the microphone" in lost[2]
    assert daemon.log.count('msg="mic lost"') == 1  # the second refusal is the same outage

    async def mic_present() -> bool:
        status = await daemon.status()
        return bool(status["mic"]["present"] and status["state"] == "idle")

    await wait_for(mic_present, what="the mic once it is free")
    events = shim_events(shim_log)
    assert [text.split(" errno")[0] for text, _ in events if text.startswith("open")] == [
        "open-fail 1", "open-fail 2", "open 3",
    ]  # fmt: skip
    attempts = times(events, "open")
    waits = [b - a for a, b in itertools.pairwise(attempts)]
    assert waits[0] >= BACKOFF_S - 0.01 and waits[1] >= 2 * BACKOFF_S - 0.01, waits
    outage = re.search(r'msg="mic back" device=\S+ outage_s=(?P<s>[\d.]+)', daemon.log)
    assert outage is not None and float(outage["s"]) >= 3 * BACKOFF_S - 0.01

    # capture works: an encounter records the mic
    cid = await start_encounter(daemon)

    async def some_audio() -> bool:
        return bool((await daemon.status())["backlog"]["bytes"] > 32000)

    await wait_for(some_audio, what="audio in the recording")
    [rec] = await stop_and_deliver(daemon, aas_emulator, cid, 1)
    [closed] = closed_recordings(daemon.log)
    assert closed["reason"] == "stop"
    assert rec["bytes"] == closed["length"] > 32000
    status = await daemon.status()
    assert status["mic"]["present"] is True and status["mic"]["xruns"] == 0


def expected_with_gaps(
    config: Path, stream: bytes, start: int, end: int, gaps: list[tuple[int, int]]
) -> bytes:
    """What the pipeline makes of timeline frames [start, end) of `stream`, where each gap
    (at_frame, lost) removed the `lost` frames before `at_frame` (computed independently)."""
    cfg = load_config(config)
    fmt = AudioFormat(RATE, 1, "S16_LE")
    pipeline = Pipeline(fmt, cfg.audio, cfg.vad, cfg.encoding)
    edges = [0, *(x for at, lost in gaps for x in (at - lost, at)), end]
    out = bytearray()
    last_end: int | None = None
    for a, b in zip(edges[::2], edges[1::2], strict=True):
        a, b = max(a, start), min(b, end)
        if a >= b:
            continue
        lost_before = 0 if last_end is None else a - last_end
        data = stream[a * FRAME_BYTES : b * FRAME_BYTES]
        out += pipeline.process(Frames(data, fmt, a, lost_before)).encoded
        last_end = b
    out += pipeline.finish().encoded
    return bytes(out)


async def test_overruns_are_counted_and_the_recording_stays_sample_accurate(
    aas_emulator: EmulatorHandle, start_daemon: StartDaemon, tmp_path: Path, short_dir: Path,
    fault_shim: Path, mic: MicFeed,
) -> None:  # fmt: skip
    shim_log = tmp_path / "shim.log"
    lose = 1000
    config = alsa_config(aas_emulator, tmp_path, short_dir, mic, backoff_max_s=BACKOFF_S)
    # reads 150 and 200 overrun: each loses `lose` frames of real input, then -EPIPE
    env = mic_env(fault_shim, shim_log, SHIM_EPIPE_AT="150,200", SHIM_XRUN_LOSE=str(lose))
    daemon = await start_daemon(config, env=env)
    cid = await start_encounter(daemon)

    async def two_xruns() -> bool:
        return bool((await daemon.status())["mic"]["xruns"] == 2)

    await wait_for(two_xruns, what="two overruns counted")
    code, out, err = await daemon.ctl("status")
    assert code == 0, err
    status = json.loads(out)
    # an overrun is counted, not an outage: the encounter keeps recording #1
    assert status["state"] == "recording" and status["recording_seq"] == 1, status
    assert status["mic"]["present"] is True and status["alarms"] == []
    backlog = status["backlog"]["bytes"]

    async def more_audio() -> bool:
        return bool((await daemon.status())["backlog"]["bytes"] > backlog + 16000)

    await wait_for(more_audio, what="audio after the overruns")
    [rec] = await stop_and_deliver(daemon, aas_emulator, cid, 1)
    assert re.findall(r'msg="capture overrun" device=\S+ lost_frames=(\d+)', daemon.log) == [
        str(lose),
        str(lose),
    ]  # measured on the (shim-paced) PCM clock: exactly the frames the device lost
    # reads 1-149 gave 149 periods, read 150 lost `lose`; reads 151-199 49 more, read 200 lost
    at1 = 149 * PERIOD_FRAMES + lose
    at2 = at1 + 49 * PERIOD_FRAMES + lose
    [closed] = closed_recordings(daemon.log)
    assert closed["start"] < at1 - lose and closed["end"] > at2  # both overruns inside
    stored = await aas_emulator.recording_bytes(cid, rec["recordingId"])
    assert len(stored) == closed["length"]
    expected = expected_with_gaps(
        config, mic.audio, closed["start"], closed["end"], [(at1, lose), (at2, lose)]
    )
    assert stored == expected  # every frame at its timeline position, the gaps zero-filled
