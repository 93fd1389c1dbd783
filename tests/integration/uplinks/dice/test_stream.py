"""Live streams against the Dice emulator: messages, the pong watermark, the note, breaks."""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path

import pytest

from edge_recorder.spool.identity import Identities
from edge_recorder.uplinks.base import (
    Ack,
    DataFormat,
    ErrorKind,
    RecordingRef,
    SessionIdentity,
    UplinkError,
)
from edge_recorder.uplinks.dice.notes import read_note
from edge_recorder.uplinks.dice.stream import DiceStream
from tests.integration.uplinks.dice.conftest import SECOND, Rig, speechlike
from tests.support.dice_emulator import MakeDiceEmulator

PCM = DataFormat("pcm", 16000, 16, 1)
REC = RecordingRef("0b7d4b1e-2f4a-4c55-9a53-1c1a0e7d9b10", 1)


class Sender:
    """Sends `data[start:]` in `piece`-byte calls (as the engine does) while a task collects
    the acks, like the engine's ack pump."""

    def __init__(self, stream: DiceStream) -> None:
        self.stream = stream
        self.acks: list[Ack] = []
        self.collector = asyncio.create_task(self._collect())

    async def _collect(self) -> None:
        async for ack in self.stream.acks():
            self.acks.append(ack)

    async def send(self, data: bytes, start: int, piece: int) -> Sender:
        for pos in range(start, len(data), piece):
            await self.stream.send(pos, data[pos : pos + piece])
        return self


async def send_all(stream: DiceStream, data: bytes, start: int, piece: int) -> Sender:
    return await Sender(stream).send(data, start, piece)


async def test_a_stream_delivers_the_exact_bytes_and_brings_back_a_sealed_note(
    rig: Rig, session: SessionIdentity
) -> None:
    client, _ = rig.client(note_template="consult", language="fr-CA", speaker="provider")
    data = speechlike(3.3)
    stream = await client.open_recording(session, REC, PCM)
    assert stream.resume_offset == 0
    sender = await send_all(stream, data[: 3 * SECOND // 2], 0, 3200)  # 100 ms per send
    mid = await stream.wait_confirmed(SECOND, 5.0)  # a pong mid-stream, before any close
    assert mid in (SECOND, 3 * SECOND // 2)  # the 1 s ping, or the 1 s timer's ping
    await sender.send(data, 3 * SECOND // 2, 3200)
    assert await stream.close() == len(data)
    await sender.collector
    acks = sender.acks
    assert acks and acks[-1] == Ack(len(data), final=True)
    counts = [a.stored for a in acks]
    assert counts == sorted(counts) and all(c <= len(data) for c in counts)

    (emitted,) = await rig.emu.sessions()
    assert emitted["state"] == "stopped"
    assert emitted["sha256"] == hashlib.sha256(data).hexdigest()
    assert await rig.emu.stream_bytes(emitted["index"]) == data
    assert emitted["config"]["sampleRate"] == 16000
    assert emitted["config"]["language"] == "fr-CA"
    assert emitted["config"]["noteTemplate"] == "consult"
    assert emitted["config"]["tracks"] == [{"id": stream.track_id, "speaker": "provider"}]
    assert emitted["config"]["outputObjects"] == ["transcript", "note"]
    assert emitted["chunks"] == -(-len(data) // 3200)  # one audio_chunk per 100 ms send
    assert stream.note is not None and stream.note.titles[0] == "REASON_FOR_REFERRAL"
    assert stream.transcript.count == emitted["transcriptItems"] >= 2
    assert stream.transcript.final_count == stream.transcript.count

    (note_file,) = rig.notes_dir.iterdir()
    assert note_file.name == f"{Identities(rig.key).ref('enc-1')}-{stream.track_id}.json.enc"
    assert note_file.stat().st_mode & 0o777 == 0o600
    assert b"Emulated" not in note_file.read_bytes()  # sealed, not plain JSON
    document = read_note(rig.key, note_file)
    assert [s["sec_title"] for s in document["note"]["sections"]] == emitted["noteSections"]
    assert document["start_offset"] == 0 and document["end_offset"] == len(data)

    started = await client.start_processing(session)
    assert started.recording_count == 1 and started.total_bytes == len(data)
    refs = dict(started.references)
    assert refs["streams"] == "1" and refs["transcript_items"] == str(stream.transcript.count)
    assert refs["note_sections"].split(",") == emitted["noteSections"]


async def test_big_backlog_sends_are_split_into_chunks_of_at_most_one_second(
    rig: Rig, session: SessionIdentity
) -> None:
    client, _ = rig.client(chunk_ms=1000)
    data = speechlike(4.5)
    stream = await client.open_recording(session, REC, PCM)
    await send_all(stream, data, 0, 64 * 1024)  # the engine's backlog message size
    assert await stream.close() == len(data)
    (emitted,) = await rig.emu.sessions()
    # 144000 bytes in sends of 65536, 65536, 12928 → 3 + 3 + 1 chunks of <= 32000 bytes (1 s);
    # the emulator refuses any chunk over 1 s, so the stream's success proves the limit too
    assert emitted["chunks"] == 7 and emitted["bytes"] == len(data)


async def test_after_a_break_a_new_stream_continues_from_the_confirmed_offset(
    rig: Rig, session: SessionIdentity
) -> None:
    client, _ = rig.client()
    data = speechlike(6.0)
    await rig.emu.add_fault(kind="drop_stream", afterBytes=int(2.6 * SECOND))
    first = await client.open_recording(session, REC, PCM)
    sender = await send_all(first, data[:SECOND], 0, 3200)
    await first.wait_confirmed(SECOND, 5.0)  # at least the first second is confirmed
    with pytest.raises(UplinkError) as broke:
        await sender.send(data, SECOND, 3200)
        await first.wait_confirmed(len(data), 5.0)
    assert broke.value.kind is ErrorKind.UNAVAILABLE and broke.value.retryable
    confirmed = first.confirmed
    await first.abort()
    assert SECOND <= confirmed <= int(2.6 * SECOND)

    second = await client.open_recording(session, REC, PCM, starting_offset=confirmed)
    assert second.resume_offset == confirmed
    await send_all(second, data, confirmed, 3200)
    assert await second.close() == len(data)

    one, two = await rig.emu.sessions()
    got_one, got_two = await rig.emu.stream_bytes(1), await rig.emu.stream_bytes(2)
    assert one["state"] == "dropped" and two["state"] == "stopped"
    assert got_one == data[: len(got_one)]  # the first stream: a prefix of the recording
    assert got_two == data[confirmed:]  # the second: exactly from the confirmed offset
    overlap = len(got_one) - confirmed
    assert 0 <= overlap <= SECOND + 8000  # at most ~1 s (one ping period) + one chunk


async def test_an_error_msg_fails_the_stream_as_a_retryable_server_error(
    rig: Rig, session: SessionIdentity
) -> None:
    client, _ = rig.client()
    await rig.emu.add_fault(kind="error_msg", message="transcriber overloaded", afterBytes=SECOND)
    stream = await client.open_recording(session, REC, PCM)
    data = speechlike(3.0)
    with pytest.raises(UplinkError) as failed:
        await send_all(stream, data, 0, 3200)
        await stream.wait_confirmed(len(data), 5.0)
    err = failed.value
    assert err.kind is ErrorKind.SERVER and err.retryable and err.transport == "websocket"
    assert "transcriber overloaded" in err.message
    await stream.abort()
    assert stream.confirmed <= SECOND  # nothing after the refused chunk counts as received


async def test_duration_limit_counts_down_and_the_limit_ends_the_stream(
    make_dice_emulator: MakeDiceEmulator, tmp_path: Path, session: SessionIdentity
) -> None:
    emu = await make_dice_emulator(stream_limit_s=3.0, countdown_s=2.0)
    rig = Rig(emu, tmp_path)
    client, tokens = rig.client()
    try:
        conf = await client.retrieve_configuration(session)
        assert (conf.max_recording_duration_s, conf.warn_before_s) == (3600.0, 60.0)
        stream = await client.open_recording(session, REC, PCM)
        data = speechlike(4.0)
        await send_all(stream, data, 0, 8000)
        with pytest.raises(UplinkError) as limited:
            await stream.wait_confirmed(len(data), 5.0)
        assert limited.value.kind is ErrorKind.SERVER
        assert "duration limit of 3 s reached" in limited.value.message
        assert stream.limit_remaining_s == 0.0  # the countdown reached 0 before the refusal
        assert stream.confirmed == 3 * SECOND  # exactly the accepted 3 s
        await stream.abort()
        (emitted,) = await emu.sessions()
        assert emitted["durationLimitSent"] == [2, 1, 0] and emitted["bytes"] == 3 * SECOND
    finally:
        await client.aclose()
        await tokens.aclose()


async def test_the_recording_format_must_be_pcm16_mono(rig: Rig, session: SessionIdentity) -> None:
    client, _ = rig.client()
    for fmt in (DataFormat("opus", 16000, 16, 1), DataFormat("pcm", 16000, 16, 2)):
        with pytest.raises(UplinkError) as refused:
            await client.open_recording(session, REC, fmt)
        assert refused.value.kind is ErrorKind.INVALID and not refused.value.retryable
    assert await rig.emu.sessions() == []
