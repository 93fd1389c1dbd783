"""`edge-recorder run` delivering to the Dice STREAM emulator across a network cut.

The service keeps no copy and has no resume, so after the cut the daemon opens a NEW stream
at the offset the last pong confirmed. Proof, from the daemon's own log (`dice stream opened`
recording_id, offset, stream) and the emulator's per-stream bytes: laid at their offsets, the
streams tile the recording exactly: each stream equals the device's bytes at its offset, none
leaves a gap, together they cover the whole recording, and the overlap (bytes sent but not
yet confirmed when the link died) is small.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from devtools.faultproxy import FaultProxy
from edge_recorder.spool.crypto import load_key
from edge_recorder.spool.identity import Identities
from edge_recorder.uplinks.dice.notes import read_note
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
from tests.support.dice_emulator import DiceEmulatorHandle
from tests.support.dice_emulator import dice_emulator as dice_emulator  # fixture by name
from tests.support.dice_emulator import make_dice_emulator as make_dice_emulator

BYTES_PER_S = 32000  # 16 kHz PCM16 mono
_OPENED = re.compile(
    r'msg="dice stream opened" recording_(?:id=(?P<rid>\S+)|seq=(?P<seq>\d+)) '
    r"offset=(?P<offset>\d+) stream=(?P<stream>\S+)"
)


def opened_streams(log: str) -> list[dict[str, Any]]:
    """Live streams name the recording (id); store-and-forward streams its number (seq)."""
    ids = [rec["id"] for rec in closed_recordings(log)]  # one encounter: seq = position + 1
    return [
        {
            "rid": m["rid"] or ids[int(m["seq"]) - 1],
            "offset": int(m["offset"]),
            "stream": m["stream"],
            "path": "live" if m["rid"] else "store_forward",
        }
        for m in _OPENED.finditer(log)
    ]


async def assert_streams_tile_the_recording(
    emu: DiceEmulatorHandle, log: str, config: Path
) -> dict[str, int]:
    """Every recording is covered by its streams with no gap and no wrong byte; returns the
    overlap (bytes delivered twice) per recording."""
    by_track = {s["streamId"]: s for s in await emu.sessions()}
    overlaps = {}
    for rec in closed_recordings(log):
        expected = expected_bytes(config, rec["start"], rec["end"])
        assert len(expected) == rec["length"] > 0
        pieces = [
            (opened["offset"], await emu.stream_bytes(by_track[opened["stream"]]["index"]))
            for opened in opened_streams(log)
            if opened["rid"] == rec["id"]
        ]
        overlaps[rec["id"]] = assert_pieces_tile(expected, pieces)
    return overlaps


async def test_an_encounter_reaches_dice_across_a_network_cut(
    dice_emulator: DiceEmulatorHandle,
    start_daemon: StartDaemon,
    tmp_path: Path,
    short_dir: Path,
    speech_wav: Path,
) -> None:
    async with FaultProxy("127.0.0.1", dice_emulator.emulator.http_port) as proxy:
        password = tmp_path / "dice-password"
        password.write_text(dice_emulator.password + "\n")
        via = f"127.0.0.1:{proxy.port}"
        tree = daemon_config(None, tmp_path, short_dir, speech_wav)
        tree["uplink"].update(service="dice", keepalive_s=2.0)
        tree["dice"] = {
            "url": f"ws://{via}/v1/scribe/server",
            "token_url": f"http://{via}/v1/auth/token",
            "username": dice_emulator.username,
            "password_file": str(password),
            "note_timeout_s": 10.0,
        }
        config = write_config(tmp_path / "device.toml", tree)
        daemon = await start_daemon(config)
        await daemon.ready()
        cid = await daemon.start_encounter()

        async def streamed(count: int, at_least: int) -> bool:
            sessions = await dice_emulator.sessions()
            return len(sessions) >= count and sessions[count - 1]["bytes"] >= at_least

        await wait_for(lambda: streamed(1, 3 * BYTES_PER_S), what="live audio at the emulator")
        proxy.cut()  # the network goes away in the middle of the stream
        cut_at = (await daemon.status())["backlog"]["bytes"]

        async def recorded_offline() -> bool:
            return bool((await daemon.status())["backlog"]["bytes"] > cut_at + 4 * BYTES_PER_S)

        await wait_for(recorded_offline, what="audio recorded while offline")
        proxy.pass_through()
        await wait_for(lambda: streamed(2, 6 * BYTES_PER_S), what="a new stream after the cut")

        # A second outage: recording #2 is made entirely offline, so it never opens live and
        # goes up as a store-and-forward stream once the network is back.
        await record_offline_then_deliver(daemon, proxy, 3 * BYTES_PER_S)

    log = daemon.log
    first, second = closed_recordings(log)
    assert (first["reason"], second["reason"]) == ("pause", "stop")
    overlaps = await assert_streams_tile_the_recording(dice_emulator, log, config)
    streams = opened_streams(log)
    live = [s for s in streams if s["rid"] == first["id"]]
    assert len(live) >= 3 and live[0]["offset"] == 0  # opened, continued, finished after a cut
    assert all(s["path"] == "live" for s in live) and live[1]["offset"] > 0
    (forwarded,) = [s for s in streams if s["rid"] == second["id"]]
    assert forwarded["path"] == "store_forward" and forwarded["offset"] == 0
    print(f"dice streams={len(streams)} overlap_bytes={overlaps}")  # the measured figure
    # per break at most what was unconfirmed: < 1 s since the last ping + one engine message
    assert overlaps[first["id"]] <= (len(live) - 1) * (BYTES_PER_S + 64 * 1024)
    assert overlaps[second["id"]] == 0
    sessions = await dice_emulator.sessions()
    finished = [s for s in sessions if s["state"] == "stopped"]
    assert len(finished) == 2 and all(s["noteSections"][0] == "SOAP_SUBJECTIVE" for s in finished)

    key = load_key(tmp_path / "spool.key", allow_create=False)[0]
    ref = Identities(key).ref(cid)  # notes are named by the keyed ref, never by the id
    notes = sorted((tmp_path / "spool" / "notes").glob(f"{ref}-*.json.enc"))
    assert notes, "the note of the final stream is kept, sealed"
    documents = [read_note(key, path) for path in notes]
    ends = {(d["recording_seq"], d["end_offset"]) for d in documents if d["note"]}
    assert {(1, first["length"]), (2, second["length"])} <= ends
    assert cid not in log  # the encounter id may be EHR data: never logged
