"""The delivery engine over the in-memory service that ships with the uplinks
(`edge_recorder.uplinks.fakes`): the engine's own rules, without an emulator or a network."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from edge_recorder.config.model import Config
from edge_recorder.delivery.engine import DeliveryEngine
from edge_recorder.spool import Spool
from edge_recorder.uplinks.fakes import FakeService, fake_uplinks
from tests.support.helpers import async_poll_until

AUDIO = bytes(range(256)) * 50  # 12,800 bytes: 0.4 s of 16 kHz PCM16


@pytest.fixture
def config(tmp_path: Path) -> Config:
    return Config.model_validate(
        {
            "spool": {
                "dir": str(tmp_path / "spool"),
                "key_file": str(tmp_path / "spool.key"),
                "reserve_free_bytes": 0,
            },
            "uplink": {"retry_initial_s": 0.05, "retry_max_s": 0.2},
        }
    )


@pytest.fixture
def spool(config: Config) -> Iterator[Spool]:
    opened = Spool.open(config.spool, environ={})
    yield opened
    opened.close()


@contextlib.asynccontextmanager
async def running(
    config: Config, spool: Spool, service: FakeService, *, live_enabled: bool = True
) -> AsyncIterator[DeliveryEngine]:
    engine = DeliveryEngine(config, spool, uplinks=fake_uplinks(service, live_enabled=live_enabled))
    task = asyncio.create_task(engine.run())
    try:
        yield engine
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await engine.aclose()


def record(spool: Spool, cid: str, seq: int = 1, data: bytes = AUDIO) -> str:
    rid = str(uuid.uuid4())
    writer = spool.begin_recording(cid, seq, rid, codec="pcm16", sample_rate=16000)
    writer.append(data)
    writer.close("stopped")
    return rid


def reclaimed(spool: Spool, cid: str) -> bool:
    return not [r for r in spool.recordings() if r.encounter == cid]


async def test_a_finished_encounter_arrives_byte_exact_and_is_processed_once(
    config: Config, spool: Spool
) -> None:
    service = FakeService()
    record(spool, "enc-1", 1)
    record(spool, "enc-1", 2, AUDIO[::-1])
    spool.end_encounter("enc-1")
    async with running(config, spool, service) as engine:
        engine.wake()
        await async_poll_until(lambda: reclaimed(spool, "enc-1"), what="enc-1 reclaimed")
        assert engine.snapshot().online
    assert service.held("enc-1") == {1: AUDIO, 2: AUDIO[::-1]}
    assert service.processing_calls == 1
    assert service.processing["enc-1"].total_bytes == 2 * len(AUDIO)


async def test_without_live_delivery_every_recording_goes_store_and_forward(
    config: Config, spool: Spool
) -> None:
    service = FakeService()
    record(spool, "enc-2")
    spool.end_encounter("enc-2")
    async with running(config, spool, service, live_enabled=False) as engine:
        engine.wake()
        await async_poll_until(lambda: reclaimed(spool, "enc-2"), what="enc-2 reclaimed")
    assert service.uploads == 1
    assert service.held("enc-2") == {1: AUDIO}


async def test_offline_keeps_the_audio_and_says_so_then_delivers_when_back(
    config: Config, spool: Spool
) -> None:
    service = FakeService(offline=True)
    record(spool, "enc-3")
    spool.end_encounter("enc-3")
    async with running(config, spool, service) as engine:
        engine.wake()
        await async_poll_until(
            lambda: engine.snapshot().last_error is not None, what="an error reported"
        )
        snap = engine.snapshot()
        assert not snap.online
        assert snap.last_error is not None and snap.last_error.code == "delivery_unavailable"
        assert not reclaimed(spool, "enc-3")
        assert service.recordings == {}
        service.offline = False
        engine.wake()
        await async_poll_until(lambda: reclaimed(spool, "enc-3"), what="enc-3 reclaimed")
    assert service.held("enc-3") == {1: AUDIO}
    assert service.processing_calls == 1


async def test_a_silent_live_service_means_store_and_forward_with_an_alarm(
    config: Config, spool: Spool
) -> None:
    """A live stream that gets no answer at all (no open answer, no ack) is not reopened: the
    recording goes through REST once it closes, and the engine says so until a live stream
    is answered again."""
    config.uplink.request_timeout_s = 0.3  # the ack watchdog's bound
    service = FakeService(silent=True)
    rid = str(uuid.uuid4())
    writer = spool.begin_recording("enc-4", 1, rid, codec="pcm16", sample_rate=16000)
    writer.append(AUDIO)
    async with running(config, spool, service) as engine:
        engine.wake()
        await async_poll_until(lambda: engine.context.work.rest_only == {rid}, what="live given up")
        snap = engine.snapshot()
        assert snap.last_error is not None and snap.last_error.code == "delivery_live_silent"
        assert snap.live_silent
        assert service.opens == 1  # and no more: the recording waits for REST
        writer.append(AUDIO[::-1])
        writer.close("stopped")
        spool.end_encounter("enc-4")
        engine.wake()
        await async_poll_until(lambda: reclaimed(spool, "enc-4"), what="enc-4 reclaimed")
        assert service.opens == 1
        assert service.uploads == 1
        assert service.held("enc-4") == {1: AUDIO + AUDIO[::-1]}
        assert engine.snapshot().live_silent  # nothing live has answered since
        service.silent = False
        live = spool.begin_recording("enc-6", 1, str(uuid.uuid4()), codec="pcm16",
                                     sample_rate=16000)  # fmt: skip
        live.append(AUDIO)
        engine.wake()
        await async_poll_until(lambda: not engine.snapshot().live_silent, what="alarm cleared")
        live.close("stopped")


async def test_a_stream_whose_open_is_never_answered_delivers_from_byte_zero(
    config: Config, spool: Spool
) -> None:
    """The live AAS has been seen never to answer an open, yet to acknowledge the data: the
    stream goes on from byte 0 and the acks prove delivery; no alarm."""
    service = FakeService(silent_opens=True)
    rid = str(uuid.uuid4())
    writer = spool.begin_recording("enc-7", 1, rid, codec="pcm16", sample_rate=16000)
    writer.append(AUDIO)
    async with running(config, spool, service) as engine:
        engine.wake()
        await async_poll_until(
            lambda: spool.recording(rid).confirmed == len(AUDIO), what="the acks recorded"
        )
        writer.close("stopped")
        spool.end_encounter("enc-7")
        engine.wake()
        await async_poll_until(lambda: reclaimed(spool, "enc-7"), what="enc-7 reclaimed")
        assert not engine.snapshot().live_silent
    assert service.uploads == 0  # delivered live
    assert service.held("enc-7") == {1: AUDIO}


async def test_a_broken_stream_whose_open_was_never_answered_is_not_resumed_at_an_offset(
    config: Config, spool: Spool
) -> None:
    """Resuming at a byte offset needs the server's word on what it holds (its open answer).
    Without it a broken stream is not reopened: the recording goes through REST, whole."""
    service = FakeService(silent_opens=True)
    rid = str(uuid.uuid4())
    writer = spool.begin_recording("enc-8", 1, rid, codec="pcm16", sample_rate=16000)
    writer.append(AUDIO)
    async with running(config, spool, service) as engine:
        engine.wake()
        await async_poll_until(
            lambda: spool.recording(rid).confirmed == len(AUDIO), what="the acks recorded"
        )
        service.offline = True
        writer.append(AUDIO[::-1])
        await async_poll_until(lambda: rid in engine.context.work.rest_only, what="to REST")
        assert spool.recording(rid).confirmed == 0  # REST starts over, whole
        assert not engine.snapshot().live_silent  # the service did answer: not an alarm
        writer.close("stopped")
        spool.end_encounter("enc-8")
        service.offline = False
        engine.wake()
        await async_poll_until(lambda: reclaimed(spool, "enc-8"), what="enc-8 reclaimed")
    assert service.opens == 1
    assert service.uploads == 1
    assert service.held("enc-8") == {1: AUDIO + AUDIO[::-1]}


async def test_after_an_outage_the_oldest_encounter_is_processed_before_the_backlog_goes_up(
    config: Config, spool: Spool
) -> None:
    """A clinician waits for the oldest note: each encounter is processed as soon as its own
    recordings are up, not after every recording of the backlog."""
    service = FakeService()
    names = [f"enc-{n:02d}" for n in range(12)]
    for name in names:
        record(spool, name, 1)
        record(spool, name, 2, AUDIO[::-1])
        spool.end_encounter(name)
    async with running(config, spool, service, live_enabled=False) as engine:  # back online
        engine.wake()
        await async_poll_until(
            lambda: all(reclaimed(spool, name) for name in names), what="backlog drained"
        )
    expected = [call for name in names for call in
                (("upload", name), ("upload", name), ("processing", name))]  # fmt: skip
    assert service.calls == expected


async def test_handing_an_encounter_to_processing_does_not_list_the_whole_spool(
    config: Config, spool: Spool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Once per encounter, a pass over every recording in the spool (to prune the delivery
    state) cost ~9 ms per encounter with 2,000 waiting: a drain quadratic in the backlog."""
    service = FakeService()
    rids = {name: record(spool, name) for name in ("enc-a", "enc-b", "enc-c")}
    for name in rids:
        spool.end_encounter(name)
    async with running(config, spool, service, live_enabled=False) as engine:

        def listed() -> None:
            raise AssertionError("the whole spool was listed")

        monkeypatch.setattr(spool, "recordings", listed)
        engine.wake()
        await async_poll_until(
            lambda: not any(spool.holds(rid) for rid in rids.values()), what="backlog drained"
        )
        assert engine.snapshot().last_error is None  # no task died on the way
        state = engine.context.state  # and the delivered recordings' entries are gone
        assert not any(state.rest_chunk_bytes(rid, 1) != 1 for rid in rids.values())
    assert [call for call in service.calls if call[0] == "processing"] == [
        ("processing", name) for name in rids
    ]


async def test_the_network_coming_back_ends_the_backlogs_back_off(tmp_path: Path) -> None:
    """After a long outage the back-off has grown (here to an hour); the live task's cheap
    probe (every uplink.offline_probe_s) finds the network back and the backlog goes at once."""
    config = Config.model_validate(
        {
            "spool": {"dir": str(tmp_path / "spool"), "key_file": str(tmp_path / "k"),
                      "reserve_free_bytes": 0},
            "uplink": {"retry_initial_s": 3600, "retry_max_s": 3600, "offline_probe_s": 0.05},
        }
    )  # fmt: skip
    spool = Spool.open(config.spool, environ={})
    try:
        service = FakeService(offline=True)
        rid = record(spool, "enc-1", 1)
        spool.end_encounter("enc-1")
        async with running(config, spool, service) as engine:
            engine.wake()
            await async_poll_until(
                lambda: spool.recording(rid).attempts >= 1, what="a failed attempt, backing off"
            )
            service.offline = False
            await async_poll_until(lambda: reclaimed(spool, "enc-1"), what="enc-1 delivered")
        assert service.held("enc-1") == {1: AUDIO} and "enc-1" in service.processing
    finally:
        spool.close()
