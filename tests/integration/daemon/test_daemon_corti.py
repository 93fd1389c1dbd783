"""`edge-recorder run` with `uplink.service = "corti"`: an encounter recorded through a network
cut (while recording, then in the middle of the uploads) reaches the Corti emulator byte for
byte (split into small WAV parts), then transcripts and a document are requested."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from devtools.faultproxy import FaultProxy
from tests.integration.daemon.conftest import (
    StartDaemon,
    closed_recordings,
    daemon_config,
    expected_bytes,
    wait_for,
    write_config,
)
from tests.support.corti_emulator import CortiHandle, corti_emulator, make_corti_emulator

__all__ = ["corti_emulator", "make_corti_emulator"]

PART_AUDIO = 96_000  # 3 s of 16 kHz pcm16 per uploaded file: every recording is split


def match_parts(expected: bytes, held: list[bytes]) -> int:
    """Consume from `held` the files that, in some order, tile `expected` exactly; returns how
    many. Fails when a byte is missing, differs, or cannot be placed."""
    position, used = 0, 0
    while position < len(expected):
        for index, audio in enumerate(held):
            if audio and expected[position : position + len(audio)] == audio:
                held.pop(index)
                position += len(audio)
                used += 1
                break
        else:
            raise AssertionError(f"no uploaded file continues the recording at byte {position}")
    return used


async def test_encounter_reaches_corti_exactly_across_a_network_cut(
    corti_emulator: CortiHandle, start_daemon: StartDaemon, tmp_path: Path, short_dir: Path,
    speech_wav: Path,
) -> None:  # fmt: skip
    proxy = await FaultProxy("127.0.0.1", corti_emulator.emulator.http_port).start()
    try:
        await _run(corti_emulator, proxy, start_daemon, tmp_path, short_dir, speech_wav)
    finally:
        await proxy.stop()


async def _run(emu: CortiHandle, proxy: FaultProxy, start_daemon: StartDaemon, tmp_path: Path,
               short_dir: Path, wav: Path) -> None:  # fmt: skip
    secret = tmp_path / "corti-secret"
    secret.write_text(emu.client_secret + "\n")
    corti = emu.corti_section(
        secret,
        base=f"http://127.0.0.1:{proxy.port}",
        upload_max_bytes=PART_AUDIO + 44,
        template_keys=["corti-soap"],
        poll_interval_s=0.05,
    )
    tree = daemon_config(None, tmp_path, short_dir, wav, uplink={"service": "corti"}, corti=corti)
    config = write_config(tmp_path / "device.toml", tree)
    daemon = await start_daemon(config)
    await daemon.ready()

    proxy.cut()  # the network goes down while the encounter records
    cid = await daemon.start_encounter()

    async def spooled(n: int) -> bool:
        return bool((await daemon.status())["backlog"]["bytes"] > n)

    await wait_for(lambda: spooled(200_000), what="audio of recording #1")
    code, _, err = await daemon.ctl("pause")  # recording #1 closes while offline
    assert code == 0, err

    async def upload_failed() -> bool:
        return proxy.stats.refused > 0 and not (await daemon.status())["online"]

    await wait_for(upload_failed, what="a failed upload attempt while cut")
    assert await emu.sessions() == []
    code, out, err = await daemon.ctl("resume")
    assert code == 0 and json.loads(out)["data"]["recording_seq"] == 2, err

    proxy.slow(250_000)  # back, slowly: recording #1's parts go up one by one

    async def first_part_held() -> bool:
        sessions = await emu.sessions()
        return bool(sessions and sessions[0]["recordings"])

    await wait_for(first_part_held, what="the first uploaded part")
    proxy.cut()  # cut again in the middle of the uploads
    refused = proxy.stats.refused
    await wait_for(lambda: _true(proxy.stats.refused > refused), what="a retry refused while cut")
    held_during_cut = len((await emu.sessions())[0]["recordings"])
    proxy.pass_through()

    await wait_for(lambda: spooled(0), what="audio in recording #2")
    code, _, err = await daemon.ctl("stop")
    assert code == 0, err
    await daemon.wait_state("idle")

    async def processed() -> bool:
        session = (await emu.sessions())[0]
        return bool(session["documents"]) and "encounter handed to processing" in daemon.log

    await wait_for(processed, timeout=40, what="uploads, transcripts and the document")
    session = await emu.session(cid)
    await _assert_exact(emu, session, config, daemon.log)
    assert len(session["recordings"]) > held_during_cut
    assert len(session["transcripts"]) == len(session["recordings"])
    assert [d["templateRef"] for d in session["documents"]] == ["corti-soap"]
    assert session["encounter"]["identifier"] == cid
    assert cid not in daemon.log  # the encounter id may be EHR data: never logged
    status = await daemon.status()
    assert status["backlog"]["recordings"] == 0  # reclaimed only after processing started


async def _true(value: bool) -> bool:
    return value


async def _assert_exact(emu: CortiHandle, session: dict[str, Any], config: Path, log: str) -> None:
    """Every recording the daemon closed is held as WAV parts whose audio tiles exactly the
    pipeline's output for its WAV frames (computed independently): no gap, no duplicate."""
    closed = sorted(closed_recordings(log), key=lambda c: c["start"])
    assert [c["reason"] for c in closed] == ["pause", "stop"]
    held = []
    for rec in session["recordings"]:
        assert rec["format"] == "wav" and rec["bytes"] <= PART_AUDIO + 44
        held.append(await emu.audio(session["interactionId"], rec["recordingId"]))
    files = 0
    for mine in closed:
        expected = expected_bytes(config, mine["start"], mine["end"])
        assert len(expected) == mine["length"] > PART_AUDIO  # each recording was split
        files += match_parts(expected, held)
    assert held == [], f"{len(held)} uploaded file(s) left over: a duplicate"
    assert files == len(session["recordings"])


async def test_a_lost_interaction_is_delivered_again_as_flac_parts(
    corti_emulator: CortiHandle, start_daemon: StartDaemon, tmp_path: Path, short_dir: Path,
    speech_wav: Path,
) -> None:  # fmt: skip
    """FLAC cut at frame boundaries; the service loses the whole interaction after the uploads,
    before processing: the engine re-delivers everything to a new interaction."""
    secret = tmp_path / "corti-secret"
    secret.write_text(corti_emulator.client_secret + "\n")
    corti = corti_emulator.corti_section(secret, upload_max_bytes=60_000, poll_interval_s=0.05)
    tree = daemon_config(
        None, tmp_path, short_dir, speech_wav,
        uplink={"service": "corti"}, corti=corti, encoding={"codec": "flac"},
    )  # fmt: skip
    config = write_config(tmp_path / "device.toml", tree)
    await corti_emulator.add_fault(kind="fail", target="rest", status=503, path="/transcripts/",
                                   count=1000)  # fmt: skip
    daemon = await start_daemon(config)
    await daemon.ready()
    cid = await daemon.start_encounter()

    async def spooled() -> bool:
        return bool((await daemon.status())["backlog"]["bytes"] > 150_000)

    await wait_for(spooled, what="FLAC audio in the spool")

    async def interaction_open() -> bool:  # created when the encounter starts, not at upload
        sessions = await corti_emulator.sessions()
        return bool(sessions) and sessions[0]["encounter"]["identifier"] == cid

    await wait_for(interaction_open, what="the interaction while recording")
    assert (await corti_emulator.session(cid))["recordings"] == []
    code, _, err = await daemon.ctl("stop")
    assert code == 0, err

    async def processing_refused() -> bool:
        return "unavailable (rest 503): POST /interactions/{id}/transcripts/" in daemon.log

    await wait_for(processing_refused, what="uploads done, processing failing")
    first = await corti_emulator.session(cid)
    assert len(first["recordings"]) >= 2
    await corti_emulator.forget_interaction(cid)  # the service loses everything
    await corti_emulator.clear_faults()

    async def delivered_again() -> bool:
        sessions = await corti_emulator.sessions()
        return bool(sessions and sessions[0]["transcripts"]) and (
            "encounter handed to processing" in daemon.log
        )

    await wait_for(delivered_again, timeout=40, what="re-delivery and processing")
    (session,) = await corti_emulator.sessions()
    assert session["interactionId"] != first["interactionId"]
    (closed,) = closed_recordings(daemon.log)
    expected = expected_bytes(config, closed["start"], closed["end"])
    raws = [await corti_emulator.raw(cid, r["recordingId"]) for r in session["recordings"]]
    audio = [await corti_emulator.audio(cid, r["recordingId"]) for r in session["recordings"]]
    assert len(raws) >= 2 and all(len(r) <= 60_000 for r in raws)
    header = expected[: len(raws[0]) - len(audio[0])]
    assert all(raw.startswith(header) and raw[:4] == b"fLaC" for raw in raws)
    assert header + b"".join(audio) == expected  # every byte once, in order
    assert "service lost the session" in daemon.log


async def test_live_mode_streams_a_real_time_copy_beside_the_upload(
    corti_emulator: CortiHandle, start_daemon: StartDaemon, tmp_path: Path, short_dir: Path,
    speech_wav: Path,
) -> None:  # fmt: skip
    """`corti.live_stream = true`: while the encounter records, the interaction's `/streams`
    gets the audio (config, CONFIG_ACCEPTED, frames, end, ENDED), exactly the recording's bytes
    behind a streaming WAV header; the recording is still uploaded, byte for byte."""
    import hashlib

    from edge_recorder.uplinks.corti.tap import streaming_wav_header

    secret = tmp_path / "corti-secret"
    secret.write_text(corti_emulator.client_secret + "\n")
    corti = corti_emulator.corti_section(secret, live_stream=True, poll_interval_s=0.05)
    tree = daemon_config(None, tmp_path, short_dir, speech_wav, uplink={"service": "corti"},
                         corti=corti)  # fmt: skip
    config = write_config(tmp_path / "device.toml", tree)
    daemon = await start_daemon(config)
    await daemon.ready()
    cid = await daemon.start_encounter()

    async def streaming() -> bool:
        sessions = await corti_emulator.sessions()
        return bool(sessions and sessions[0]["streams"] and sessions[0]["streams"][0]["configured"])

    await wait_for(streaming, what="a live stream while recording")
    assert (await corti_emulator.session(cid))["recordings"] == []  # nothing uploaded yet
    code, _, err = await daemon.ctl("stop")
    assert code == 0, err

    async def done() -> bool:
        session = await corti_emulator.session(cid)
        ended = bool(session["streams"]) and all(s["ended"] for s in session["streams"])
        return ended and "encounter handed to processing" in daemon.log

    await wait_for(done, timeout=40, what="the stream ended and the upload processed")
    assert len(await corti_emulator.sessions()) == 1  # one interaction, though two paths asked
    session = await corti_emulator.session(cid)
    (closed,) = closed_recordings(daemon.log)
    expected = expected_bytes(config, closed["start"], closed["end"])
    (stream,) = session["streams"]
    sent = streaming_wav_header(16000, 1) + expected
    assert stream["bytes"] == len(sent)
    assert stream["sha256"] == hashlib.sha256(sent).hexdigest()
    (rec,) = session["recordings"]
    assert await corti_emulator.audio(cid, rec["recordingId"]) == expected


async def test_live_mode_rejoins_at_the_live_edge_after_a_broken_stream(
    corti_emulator: CortiHandle, start_daemon: StartDaemon, tmp_path: Path, short_dir: Path,
    speech_wav: Path,
) -> None:  # fmt: skip
    """The first live stream breaks: a new one starts at the live edge with a fresh WAV header
    (carrying exactly the recording's bytes from there), and the upload still holds it all."""
    import hashlib
    import re

    from edge_recorder.uplinks.corti.tap import streaming_wav_header

    secret = tmp_path / "corti-secret"
    secret.write_text(corti_emulator.client_secret + "\n")
    corti = corti_emulator.corti_section(secret, live_stream=True, poll_interval_s=0.05)
    tree = daemon_config(None, tmp_path, short_dir, speech_wav, uplink={"service": "corti"},
                         corti=corti)  # fmt: skip
    config = write_config(tmp_path / "device.toml", tree)
    await corti_emulator.add_fault(kind="drop_stream", target="ws", afterBytes=20_000, count=1)
    daemon = await start_daemon(config)
    await daemon.ready()
    cid = await daemon.start_encounter()

    async def rejoined() -> bool:
        sessions = await corti_emulator.sessions()
        return bool(sessions) and len(sessions[0]["streams"]) >= 2

    await wait_for(rejoined, what="a second live stream after the first broke")
    code, _, err = await daemon.ctl("stop")
    assert code == 0, err

    async def done() -> bool:
        return "encounter handed to processing" in daemon.log

    await wait_for(done, timeout=40, what="the upload processed")
    session = await corti_emulator.session(cid)
    first, second = session["streams"]
    assert not first["ended"] and second["ended"]
    offsets = [int(m) for m in re.findall(r'msg="corti live stream opened" \S+ offset=(\d+)',
                                          daemon.log)]  # fmt: skip
    assert offsets[0] == 0 and offsets[1] > 0 and offsets[1] % 2 == 0  # the live edge, whole
    (closed,) = closed_recordings(daemon.log)
    expected = expected_bytes(config, closed["start"], closed["end"])
    sent = streaming_wav_header(16000, 1) + expected[offsets[1] :]
    assert second["bytes"] == len(sent)
    assert second["sha256"] == hashlib.sha256(sent).hexdigest()
    (rec,) = session["recordings"]
    assert await corti_emulator.audio(cid, rec["recordingId"]) == expected
