"""An in-memory service behind the uplink protocols, shipped beside them (like gpiozero's
MockFactory): the delivery engine's unit tests, and anyone trying the engine, need no emulator.

`FakeService` holds what it was sent, per encounter and recording number, and can be switched
offline; `fake_uplinks()` wraps it in the `Uplinks` bundle the engine drives. It keeps the
protocol's promises that the engine relies on (offsets must be contiguous, a resumed recording
answers with what it already holds, StartProcessing counts what it holds) and nothing more.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from edge_recorder.uplinks.base import (
    NO_ANSWER,
    Ack,
    DataFormat,
    ErrorKind,
    FinalizeResult,
    ProcessingStarted,
    RecordingRef,
    ServiceConfiguration,
    SessionIdentity,
    Transport,
    UplinkError,
)
from edge_recorder.uplinks.bundle import Uplinks

Key = tuple[str, int]  # (correlation id, recording number)


@dataclass
class FakeService:
    """What the service holds, and switches a test flips."""

    recordings: dict[Key, bytearray] = field(default_factory=dict)
    sessions: set[str] = field(default_factory=set)
    processing: dict[str, ProcessingStarted] = field(default_factory=dict)
    processing_calls: int = 0
    uploads: int = 0  # recordings that came through store-and-forward
    offline: bool = False
    silent_opens: bool = False  # live opens get no answer (as the live AAS has been seen to)
    silent: bool = False  # nothing at all comes back on a live stream: no acks, no close
    opens: int = 0
    # ("upload" | "processing", correlation id) in the order the service saw them
    calls: list[tuple[str, str]] = field(default_factory=list)
    configuration: ServiceConfiguration = field(default_factory=ServiceConfiguration)

    def reachable(self, transport: Transport) -> None:
        if self.offline:
            raise UplinkError(ErrorKind.UNAVAILABLE, "fake service offline", transport=transport)

    def held(self, correlation_id: str) -> dict[int, bytes]:
        return {seq: bytes(b) for (cid, seq), b in self.recordings.items() if cid == correlation_id}


class FakeLiveRecording:
    """One open recording: every send is stored and acknowledged at once."""

    def __init__(self, service: FakeService, key: Key) -> None:
        self._service = service
        self._key = key
        self._held = service.recordings.setdefault(key, bytearray())
        self._answering = not (service.silent_opens or service.silent)
        if not self._answering:
            self._held.clear()  # an unanswered open streams from byte 0
        self._resume = len(self._held)
        self._acks: asyncio.Queue[Ack | None] = asyncio.Queue()

    @property
    def resume_offset(self) -> int:
        return self._resume

    @property
    def confirmed(self) -> int:
        return 0 if self._service.silent else len(self._held)

    @property
    def open_confirmed(self) -> bool:
        return self._answering

    @property
    def answered(self) -> bool:
        return self._answering or (self.confirmed > 0 and not self._service.silent)

    @property
    def sequence(self) -> int:
        return self._key[1]

    async def send(self, offset: int, data: bytes) -> None:
        self._service.reachable("grpc")
        if offset != len(self._held):
            raise UplinkError(
                ErrorKind.CONFLICT,
                f"offset {offset} but the service holds {len(self._held)} bytes",
                transport="grpc",
            )
        self._held += data
        if not self._service.silent:
            self._acks.put_nowait(Ack(len(self._held)))

    async def acks(self) -> AsyncIterator[Ack]:
        while (ack := await self._acks.get()) is not None:
            yield ack
            if ack.final:
                return

    async def wait_confirmed(self, offset: int, timeout_s: float) -> int:
        return len(self._held)

    async def close(self, reason: str = "stop", length_s: float | None = None) -> int:
        self._service.reachable("grpc")
        if self._service.silent:
            raise UplinkError(
                ErrorKind.UNAVAILABLE, "no close confirmation", transport="grpc", status=NO_ANSWER
            )
        self._acks.put_nowait(Ack(len(self._held), final=True))
        return len(self._held)

    async def abort(self) -> None:
        self._acks.put_nowait(None)


class FakeLiveStreamer:
    def __init__(self, service: FakeService) -> None:
        self.service = service

    async def retrieve_configuration(self, session: SessionIdentity) -> ServiceConfiguration:
        self.service.reachable("grpc")
        return self.service.configuration

    async def open_recording(
        self,
        session: SessionIdentity,
        recording: RecordingRef,
        data_format: DataFormat,
        starting_offset: int = 0,
        reason: str = "ui",
    ) -> FakeLiveRecording:
        self.service.reachable("grpc")
        self.service.opens += 1
        if (self.service.silent_opens or self.service.silent) and starting_offset > 0:
            raise UplinkError(
                ErrorKind.UNAVAILABLE, "no answer to a resuming RecordingOpen", transport="grpc",
                status=NO_ANSWER,
            )  # fmt: skip
        self.service.sessions.add(session.correlation_id)
        return FakeLiveRecording(self.service, (session.correlation_id, recording.sequence))

    async def start_processing(
        self, session: SessionIdentity, recording_guids: Sequence[str] = ()
    ) -> ProcessingStarted:
        self.service.reachable("grpc")
        self.service.processing_calls += 1
        held = self.service.held(session.correlation_id)
        started = ProcessingStarted(
            session.correlation_id, len(held), sum(len(b) for b in held.values())
        )
        self.service.processing[session.correlation_id] = started
        self.service.calls.append(("processing", session.correlation_id))
        return started

    async def aclose(self) -> None:
        return None


class FakeStoreForward:
    def __init__(self, service: FakeService) -> None:
        self.service = service

    async def create_session(self, session: SessionIdentity) -> None:
        self.service.reachable("rest")
        self.service.sessions.add(session.correlation_id)

    async def upload_recording(
        self,
        session: SessionIdentity,
        recording_seq: int,
        length: int,
        read: Callable[[int, int], Awaitable[bytes]],
        *,
        done: Sequence[int] = (),
        on_chunk: Callable[[int], Awaitable[None]] | None = None,
        chunk_bytes: int | None = None,
    ) -> FinalizeResult:
        self.service.reachable("rest")
        data = await read(0, length)
        self.service.recordings[(session.correlation_id, recording_seq)] = bytearray(data)
        self.service.uploads += 1
        self.service.calls.append(("upload", session.correlation_id))
        return FinalizeResult(total_chunks=1, request_id=f"fake-{self.service.uploads}")

    async def aclose(self) -> None:
        return None


def fake_uplinks(service: FakeService | None = None, *, live_enabled: bool = True) -> Uplinks:
    """The `Uplinks` of a `FakeService` (a new one unless given)."""
    service = service if service is not None else FakeService()

    async def check_auth() -> None:
        service.reachable("auth")

    return Uplinks(
        service="fake",
        live=FakeLiveStreamer(service),
        store_forward=FakeStoreForward(service),
        identity=SessionIdentity.local,
        check_auth=check_auth,
        live_enabled=live_enabled,
    )
