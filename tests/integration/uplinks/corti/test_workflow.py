"""The Corti uplink against the real emulator: interaction, uploads (WAV wrapping, splitting,
idempotent retries), the recordings check, transcripts and documents, lost audio."""

from __future__ import annotations

import io
import wave
from pathlib import Path

import pytest

from edge_recorder.delivery.state import DeliveryState
from edge_recorder.uplinks.base import ErrorKind, UplinkError
from edge_recorder.uplinks.bundle import Uplinks
from edge_recorder.uplinks.corti.factory import corti_uplinks
from tests.support.corti_emulator import CortiHandle, MakeCorti

ENCOUNTER = "enc-0001"


def reader(data: bytes):  # type: ignore[no-untyped-def]
    calls: list[tuple[int, int]] = []

    async def read(start: int, end: int) -> bytes:
        calls.append((start, end))
        return data[start:end]

    read.calls = calls  # type: ignore[attr-defined]
    return read


def pcm(seconds: float, seed: int = 1) -> bytes:
    """Distinct, non-repeating 16 kHz s16le bytes (so misplaced bytes cannot compare equal)."""
    return bytes((i * 7 + seed * 13 + (i >> 8)) % 256 for i in range(int(32000 * seconds)))


async def deliver(up: Uplinks, seq: int, data: bytes, cid: str = ENCOUNTER) -> None:
    session = up.identity(cid)
    await up.store_forward.create_session(session)
    await up.store_forward.upload_recording(session, seq, len(data), reader(data))


async def test_interaction_and_upload_hold_the_exact_bytes_as_wav(
    uplinks: Uplinks, corti_emulator: CortiHandle, state: DeliveryState
) -> None:
    data = pcm(1.5)
    await deliver(uplinks, 1, data)
    iid = state.get(f"corti:{ENCOUNTER}:interaction")
    assert iid
    shown = await corti_emulator.session(ENCOUNTER)
    assert shown["interactionId"] == iid
    assert shown["encounter"]["status"] == "in-progress"
    assert shown["encounter"]["type"] == "consultation"
    assert "startedAt" in shown["encounter"]["period"]
    (rec,) = shown["recordings"]
    assert state.get(f"corti:{ENCOUNTER}:1:part1") == rec["recordingId"]
    raw = await corti_emulator.raw(ENCOUNTER, rec["recordingId"])
    with wave.open(io.BytesIO(raw)) as wav:  # an independent WAV reader accepts the file
        assert (wav.getframerate(), wav.getnchannels(), wav.getsampwidth()) == (16000, 1, 2)
        assert wav.readframes(wav.getnframes()) == data
    assert await corti_emulator.audio(ENCOUNTER, rec["recordingId"]) == data
    assert rec["format"] == "wav" and rec["durationS"] == pytest.approx(1.5)


async def test_a_retry_uploads_nothing_twice(uplinks: Uplinks, corti_emulator: CortiHandle) -> None:
    data = pcm(0.5)
    await deliver(uplinks, 1, data)
    await deliver(uplinks, 1, data)  # the engine retries after a crash: nothing new
    await deliver(uplinks, 2, pcm(0.25, seed=2))
    shown = await corti_emulator.session(ENCOUNTER)
    assert len(shown["recordings"]) == 2
    assert len(await corti_emulator.sessions()) == 1  # one interaction per encounter


async def test_an_upload_whose_answer_was_lost_is_adopted_not_uploaded_twice(
    uplinks: Uplinks, corti_emulator: CortiHandle, state: DeliveryState
) -> None:
    """Corti stored the file but the connection broke before its answer: the retry finds the
    file in the interaction's list and adopts it instead of uploading a duplicate."""
    data = pcm(0.5)
    session = uplinks.identity(ENCOUNTER)
    await uplinks.store_forward.create_session(session)
    await corti_emulator.add_fault(kind="lose_answer", path="/recordings/", count=1)
    with pytest.raises(UplinkError) as lost:
        await uplinks.store_forward.upload_recording(session, 1, len(data), reader(data))
    assert lost.value.retryable
    assert len((await corti_emulator.session(ENCOUNTER))["recordings"]) == 1  # stored anyway
    await uplinks.store_forward.upload_recording(session, 1, len(data), reader(data))
    (rec,) = (await corti_emulator.session(ENCOUNTER))["recordings"]  # still exactly one
    assert state.get(f"corti:{ENCOUNTER}:1:part1") == rec["recordingId"]
    assert await corti_emulator.audio(ENCOUNTER, rec["recordingId"]) == data
    await deliver(uplinks, 2, pcm(0.25, seed=2))  # the next file uploads normally
    assert len((await corti_emulator.session(ENCOUNTER))["recordings"]) == 2


class Crash(Exception):
    """The process dies while reading the spool for part 3."""


async def test_after_a_restart_the_persisted_state_prevents_uploading_again(
    corti_emulator: CortiHandle, state: DeliveryState, tmp_path: Path
) -> None:
    config = corti_emulator.config(tmp_path, upload_max_bytes=8_044)
    data = pcm(1.0)  # 4 parts of 8000 bytes

    async def dying_read(start: int, end: int) -> bytes:
        if start >= 16000:
            raise Crash
        return data[start:end]

    first = corti_uplinks(config, state)
    try:
        await first.store_forward.create_session(first.identity(ENCOUNTER))
        with pytest.raises(Crash):
            await first.store_forward.upload_recording(
                first.identity(ENCOUNTER), 1, len(data), dying_read
            )
    finally:
        await first.aclose()
    assert len((await corti_emulator.session(ENCOUNTER))["recordings"]) == 2
    reborn = corti_uplinks(config, DeliveryState(tmp_path / "spool"))  # state read from disk
    read, again = reader(data), reader(data)
    try:
        await reborn.store_forward.create_session(reborn.identity(ENCOUNTER))
        await reborn.store_forward.upload_recording(reborn.identity(ENCOUNTER), 1, len(data), read)
        await reborn.store_forward.upload_recording(reborn.identity(ENCOUNTER), 1, len(data), again)
    finally:
        await reborn.aclose()
    assert read.calls == [(16000, 24000), (24000, 32000)]  # type: ignore[attr-defined]
    assert again.calls == []  # type: ignore[attr-defined]
    recs = (await corti_emulator.session(ENCOUNTER))["recordings"]
    assert len(await corti_emulator.sessions()) == 1 and len(recs) == 4
    assert b"".join([await corti_emulator.audio(ENCOUNTER, r["recordingId"]) for r in recs]) == data


async def test_long_recordings_are_split_at_frame_boundaries(
    corti_emulator: CortiHandle, state: DeliveryState, tmp_path: Path
) -> None:
    config = corti_emulator.config(tmp_path, upload_max_bytes=20_044)  # 20000 audio bytes/part
    up = corti_uplinks(config, state)
    try:
        data = pcm(2.0)  # 64000 bytes → 4 parts: 20000, 20000, 20000, 4000
        await deliver(up, 1, data)
    finally:
        await up.aclose()
    recs = (await corti_emulator.session(ENCOUNTER))["recordings"]
    assert [r["audioBytes"] for r in recs] == [20000, 20000, 20000, 4000]
    assert all(r["bytes"] <= 20_044 for r in recs)
    parts = [await corti_emulator.audio(ENCOUNTER, r["recordingId"]) for r in recs]
    assert b"".join(parts) == data
    ids = [state.get(f"corti:{ENCOUNTER}:1:part{n}") for n in (1, 2, 3, 4)]
    assert ids == [r["recordingId"] for r in recs]


async def test_split_by_duration(
    corti_emulator: CortiHandle, state: DeliveryState, tmp_path: Path
) -> None:
    up = corti_uplinks(corti_emulator.config(tmp_path, upload_max_s=0.75), state)
    try:
        await deliver(up, 1, pcm(2.0))
    finally:
        await up.aclose()
    recs = (await corti_emulator.session(ENCOUNTER))["recordings"]
    assert [r["durationS"] for r in recs] == pytest.approx([0.75, 0.75, 0.5])


async def test_a_cut_mid_upload_resumes_without_duplicating_parts(
    corti_emulator: CortiHandle, state: DeliveryState, tmp_path: Path
) -> None:
    up = corti_uplinks(corti_emulator.config(tmp_path, upload_max_bytes=16_044), state)
    data = pcm(1.5)  # 48000 bytes → 3 parts
    session = up.identity(ENCOUNTER)
    await up.store_forward.create_session(session)
    iid = state.get(f"corti:{ENCOUNTER}:interaction")
    await corti_emulator.add_fault(kind="drop_connection", path="/recordings/", count=1)
    await corti_emulator.add_fault(kind="fail", target="rest", status=503, count=1)
    try:
        with pytest.raises(UplinkError) as first:
            await up.store_forward.upload_recording(session, 1, len(data), reader(data))
        assert first.value.kind is ErrorKind.UNAVAILABLE  # connection dropped
        with pytest.raises(UplinkError) as second:
            await up.store_forward.upload_recording(session, 1, len(data), reader(data))
        assert second.value.kind is ErrorKind.UNAVAILABLE and second.value.status == 503
        await up.store_forward.upload_recording(session, 1, len(data), reader(data))
    finally:
        await up.aclose()
    recs = (await corti_emulator.session(iid or ""))["recordings"]
    assert len(recs) == 3
    audio = [await corti_emulator.audio(ENCOUNTER, r["recordingId"]) for r in recs]
    assert b"".join(audio) == data


async def test_start_processing_checks_then_transcribes_and_documents(
    uplinks: Uplinks, corti_emulator: CortiHandle, state: DeliveryState
) -> None:
    await deliver(uplinks, 1, pcm(0.5))
    await deliver(uplinks, 2, pcm(0.75, seed=3))
    session = uplinks.identity(ENCOUNTER)
    started = await uplinks.live.start_processing(session)
    assert (started.recording_count, started.total_bytes) == (2, 16000 + 24000)
    refs = dict(started.references)
    shown = await corti_emulator.session(ENCOUNTER)
    assert refs["interaction"] == shown["interactionId"]
    assert [k for k, _ in started.references].count("transcript") == 2
    assert {t["id"] for t in shown["transcripts"]} == {
        v for k, v in started.references if k == "transcript"
    }
    (doc,) = shown["documents"]
    assert refs["document:corti-soap"] == doc["id"]
    assert [s["key"] for s in doc["sections"]] == ["subjective", "objective", "assessment", "plan"]
    again = await uplinks.live.start_processing(session)  # a retry asks for nothing new
    assert again.references == started.references
    shown = await corti_emulator.session(ENCOUNTER)
    assert len(shown["transcripts"]) == 2 and len(shown["documents"]) == 1


async def test_asynchronous_transcripts_are_polled(
    make_corti_emulator: MakeCorti, tmp_path: Path, state: DeliveryState
) -> None:
    emu = await make_corti_emulator(transcripts_async=True, async_polls=2)
    up = corti_uplinks(
        emu.config(tmp_path, poll_interval_s=0.01, template_keys=["corti-soap"]), state
    )
    try:
        await deliver(up, 1, pcm(0.5))
        started = await up.live.start_processing(up.identity(ENCOUNTER))
    finally:
        await up.aclose()
    (transcript,) = (await emu.session(ENCOUNTER))["transcripts"]
    assert transcript["status"] == "completed" and transcript["polls"] == 3
    assert ("transcript", transcript["id"]) in started.references


async def test_a_lost_interaction_is_forgotten_and_delivered_again(
    uplinks: Uplinks, corti_emulator: CortiHandle, state: DeliveryState
) -> None:
    data = pcm(0.5)
    await deliver(uplinks, 1, data)
    old = state.get(f"corti:{ENCOUNTER}:interaction")
    await corti_emulator.forget_interaction(ENCOUNTER)
    with pytest.raises(UplinkError) as lost:
        await uplinks.live.start_processing(uplinks.identity(ENCOUNTER))
    assert lost.value.kind is ErrorKind.NOT_FOUND and not lost.value.retryable
    assert state.get(f"corti:{ENCOUNTER}:interaction") is None
    assert state.get(f"corti:{ENCOUNTER}:1:part1") is None
    await deliver(uplinks, 1, data)  # what the engine's re-delivery does
    started = await uplinks.live.start_processing(uplinks.identity(ENCOUNTER))
    new = dict(started.references)["interaction"]
    assert new != old
    (rec,) = (await corti_emulator.session(new))["recordings"]
    assert await corti_emulator.audio(new, rec["recordingId"]) == data


async def test_a_lost_recording_alone_is_uploaded_again(
    uplinks: Uplinks, corti_emulator: CortiHandle, state: DeliveryState
) -> None:
    one, two = pcm(0.5), pcm(0.25, seed=5)
    await deliver(uplinks, 1, one)
    await deliver(uplinks, 2, two)
    lost_id = state.get(f"corti:{ENCOUNTER}:2:part1") or ""
    await corti_emulator.forget_recording(ENCOUNTER, lost_id)
    with pytest.raises(UplinkError) as lost:
        await uplinks.live.start_processing(uplinks.identity(ENCOUNTER))
    assert lost.value.kind is ErrorKind.NOT_FOUND
    assert state.get(f"corti:{ENCOUNTER}:1:part1")  # the held one is kept
    await deliver(uplinks, 1, one)  # re-delivery: no upload for recording 1
    await deliver(uplinks, 2, two)
    started = await uplinks.live.start_processing(uplinks.identity(ENCOUNTER))
    recs = (await corti_emulator.session(ENCOUNTER))["recordings"]
    assert len(recs) == 2 and started.recording_count == 2
    assert [await corti_emulator.audio(ENCOUNTER, r["recordingId"]) for r in recs] == [one, two]


async def test_an_interaction_lost_mid_encounter_gets_the_whole_encounter_again(
    uplinks: Uplinks, corti_emulator: CortiHandle, state: DeliveryState
) -> None:
    one, two = pcm(0.25), pcm(0.25, seed=9)
    await deliver(uplinks, 1, one)
    await corti_emulator.forget_interaction(ENCOUNTER)
    session = uplinks.identity(ENCOUNTER)
    with pytest.raises(UplinkError) as lost:
        await uplinks.store_forward.upload_recording(session, 2, len(two), reader(two))
    assert lost.value.kind is ErrorKind.NOT_FOUND
    assert state.get(f"corti:{ENCOUNTER}:interaction") is None
    await deliver(uplinks, 2, two)  # the engine's retry of that recording: a new interaction
    with pytest.raises(UplinkError) as again:  # recording 1 went to the lost one: re-deliver
        await uplinks.live.start_processing(session)
    assert again.value.kind is ErrorKind.NOT_FOUND
    await deliver(uplinks, 1, one)  # what the engine's re-delivery does: 1 again, 2 skipped
    await deliver(uplinks, 2, two)
    started = await uplinks.live.start_processing(session)
    assert started.recording_count == 2
    recs = (await corti_emulator.session(ENCOUNTER))["recordings"]
    assert [await corti_emulator.audio(ENCOUNTER, r["recordingId"]) for r in recs] == [two, one]


async def test_flac_is_cut_at_frame_boundaries_into_valid_files(
    corti_emulator: CortiHandle, state: DeliveryState, tmp_path: Path
) -> None:
    import numpy as np

    from edge_recorder.audio.codecs import FlacEncoder

    samples = (np.random.default_rng(4).standard_normal(16000 * 12) * 2000).astype(np.int16)
    enc = FlacEncoder(5)
    flac = b"".join(enc.encode(samples[i : i + 1600]) for i in range(0, len(samples), 1600))
    flac += enc.finish()
    config = corti_emulator.config(tmp_path, upload_max_bytes=100_000)
    config.encoding.codec = "flac"
    up = corti_uplinks(config, state)
    try:
        await deliver(up, 1, flac)
        await deliver(up, 1, flac)  # a retry: nothing twice
    finally:
        await up.aclose()
    recs = (await corti_emulator.session(ENCOUNTER))["recordings"]
    assert len(recs) >= 3 and all(r["format"] == "flac" and r["bytes"] <= 100_000 for r in recs)
    raws = [await corti_emulator.raw(ENCOUNTER, r["recordingId"]) for r in recs]
    audio = [await corti_emulator.audio(ENCOUNTER, r["recordingId"]) for r in recs]
    header = raws[0][: len(raws[0]) - len(audio[0])]
    assert all(raw.startswith(header) for raw in raws)  # each part: the recording's metadata
    assert header + b"".join(audio) == flac  # then its frames: nothing lost or repeated


def test_opus_is_refused_by_the_factory(corti_emulator: CortiHandle, tmp_path: Path) -> None:
    config = corti_emulator.config(tmp_path)
    config.encoding.codec = "opus"
    with pytest.raises(ValueError, match=r"corti uploads need encoding.codec = pcm16 or flac"):
        corti_uplinks(config, DeliveryState(tmp_path))


async def test_retrieve_configuration_is_a_cheap_probe(
    uplinks: Uplinks, corti_emulator: CortiHandle
) -> None:
    conf = await uplinks.live.retrieve_configuration(uplinks.identity("probe"))
    assert conf.default_locale == "en"
    assert await corti_emulator.sessions() == []  # no side effects
    assert uplinks.live_enabled is False and uplinks.holds_copy is True


async def test_emulator_keeps_everything_across_a_restart(
    uplinks: Uplinks, corti_emulator: CortiHandle
) -> None:
    data = pcm(0.5)
    await deliver(uplinks, 1, data)
    await corti_emulator.restart()
    (rec,) = (await corti_emulator.session(ENCOUNTER))["recordings"]
    assert await corti_emulator.audio(ENCOUNTER, rec["recordingId"]) == data
    started = await uplinks.live.start_processing(uplinks.identity(ENCOUNTER))  # token still valid
    assert started.recording_count == 1
