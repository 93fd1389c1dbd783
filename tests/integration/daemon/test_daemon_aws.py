"""`edge-recorder run` delivering to the AWS HealthScribe emulator across a network cut.

The service sends no byte acknowledgements: the daemon confirms audio from transcript segment
end offsets and, after the cut, RESUMES THE SAME SESSION (same session id, within the 5 h
window) from that watermark. Proof, from the daemon's log (`aws stream opened` recording,
session id, offset, resumed) and the emulator's per-stream bytes: laid at their offsets, each
recording's streams tile it exactly (each equals the device's bytes at its offset, no gap,
together the whole recording); the overlap (sent but not yet transcribed when the link died)
is reported.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from devtools.faultproxy import FaultProxy
from tests.integration.daemon.conftest import (
    StartDaemon,
    assert_pieces_tile,
    closed_recordings,
    daemon_config,
    expected_bytes,
    record_offline_then_deliver,
    wait_for,
    write_config,
)
from tests.support.aws_emulator import ACCESS_KEY, SECRET_KEY, AwsEmulatorHandle
from tests.support.aws_emulator import aws_emulator as aws_emulator  # fixture by name

BYTES_PER_S = 32000  # 16 kHz PCM16 mono
_OPENED = re.compile(
    r'msg="aws stream opened" recording_(?:id=(?P<rid>\S+)|seq=(?P<seq>\d+)) '
    r"session_id=(?P<sid>\S+) offset=(?P<offset>\d+) resumed=(?P<resumed>\S+)"
)


def opened_streams(log: str) -> list[dict[str, Any]]:
    ids = [rec["id"] for rec in closed_recordings(log)]  # one encounter: seq = position + 1
    return [
        {
            "rid": m["rid"] or ids[int(m["seq"]) - 1],
            "sid": m["sid"],
            "offset": int(m["offset"]),
            "resumed": m["resumed"] == "True",
            "path": "live" if m["rid"] else "store_forward",
        }
        for m in _OPENED.finditer(log)
    ]


async def assert_streams_tile_the_recording(
    emu: AwsEmulatorHandle, log: str, config: Path
) -> dict[str, int]:
    """Returns the overlap (bytes the service got twice) per recording."""
    sessions = {s["session_id"]: s for s in await emu.sessions()}
    opened = opened_streams(log)
    index_in_session: dict[str, int] = {}
    for stream in opened:  # the k-th opening of a session is the emulator's stream k
        stream["index"] = index_in_session.get(stream["sid"], 0)
        index_in_session[stream["sid"]] = stream["index"] + 1
    for sid, count in index_in_session.items():
        assert len(sessions[sid]["streams"]) == count, (sid, sessions[sid]["streams"])
    overlaps = {}
    for rec in closed_recordings(log):
        expected = expected_bytes(config, rec["start"], rec["end"])
        assert len(expected) == rec["length"] > 0
        pieces = [
            (stream["offset"], await emu.stream_bytes(stream["sid"], stream["index"]))
            for stream in opened
            if stream["rid"] == rec["id"]
        ]
        overlaps[rec["id"]] = assert_pieces_tile(expected, pieces)
    return overlaps


async def test_an_encounter_reaches_healthscribe_across_a_network_cut(
    aws_emulator: AwsEmulatorHandle,
    start_daemon: StartDaemon,
    tmp_path: Path,
    short_dir: Path,
    speech_wav: Path,
) -> None:
    async with FaultProxy("127.0.0.1", aws_emulator.emulator.http2_port) as proxy:
        tree = daemon_config(None, tmp_path, short_dir, speech_wav)
        tree["uplink"].update(service="aws-healthscribe", keepalive_s=2.0)
        tree["aws"] = {
            "region": "us-east-1",
            "endpoint_url": f"https://127.0.0.1:{proxy.port}",
            "ca_file": str(aws_emulator.ca_file),
        }
        config = write_config(tmp_path / "device.toml", tree)
        env = {  # the standard AWS sources only: here the environment
            "AWS_ACCESS_KEY_ID": ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
            "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"),
            "AWS_CONFIG_FILE": str(tmp_path / "none"),
            "AWS_EC2_METADATA_DISABLED": "true",
        }
        daemon = await start_daemon(config, env=env)
        await daemon.ready()
        cid = await daemon.start_encounter()

        async def streamed(at_least: int) -> bool:
            return bool(sum(s["audio_bytes"] for s in await aws_emulator.sessions()) >= at_least)

        await wait_for(lambda: streamed(3 * BYTES_PER_S), what="live audio at the emulator")
        proxy.cut()  # the network goes away in the middle of the stream
        cut_at = (await daemon.status())["backlog"]["bytes"]

        async def recorded_offline() -> bool:
            return bool((await daemon.status())["backlog"]["bytes"] > cut_at + 4 * BYTES_PER_S)

        await wait_for(recorded_offline, what="audio recorded while offline")
        proxy.pass_through()

        async def resumed() -> bool:
            return any(s["resumed"] for s in opened_streams(daemon.log))

        await wait_for(resumed, what="the session resumed after the cut")
        await wait_for(lambda: streamed(10 * BYTES_PER_S), what="audio after the resume")

        # A second outage: recording #2 is made entirely offline, so it goes up as a
        # store-and-forward stream (a new session from byte 0) once the network is back.
        await record_offline_then_deliver(daemon, proxy, 3 * BYTES_PER_S)

    log = daemon.log
    first, second = closed_recordings(log)
    assert (first["reason"], second["reason"]) == ("pause", "stop")
    overlaps = await assert_streams_tile_the_recording(aws_emulator, log, config)
    streams = opened_streams(log)
    live = [s for s in streams if s["rid"] == first["id"]]
    assert live[0]["offset"] == 0 and not live[0]["resumed"]
    assert any(s["resumed"] and s["offset"] > 0 for s in live[1:])
    assert len({s["sid"] for s in live}) == 1  # one session for the recording, resumed
    (forwarded,) = [s for s in streams if s["rid"] == second["id"]]
    assert forwarded["path"] == "store_forward" and forwarded["offset"] == 0
    print(f"aws streams={len(streams)} overlap_bytes={overlaps}")  # the measured figure
    sessions = {s["session_id"]: s for s in await aws_emulator.sessions()}
    assert all(sessions[s["sid"]]["completed"] for s in streams)  # END_OF_SESSION for both
    assert overlaps[second["id"]] == 0
    # per break at most the untranscribed tail (one 2 s segment), the audio events in flight
    # and one engine message: bounded, and reported above
    per_break = 2 * BYTES_PER_S + 2 * 32 * 1024 + 256 * 1024
    assert overlaps[first["id"]] <= (len(live) - 1) * per_break
    assert cid not in log  # the encounter id may be EHR data: never logged
