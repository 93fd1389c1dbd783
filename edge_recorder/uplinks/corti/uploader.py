"""Store-and-forward to Corti: one interaction per encounter, each recording uploaded as files.

`create_session` creates the interaction once (its id kept in `state`); `upload_recording` cuts
the closed recording into parts (`parts.py`, plan persisted before the first part), wraps pcm16
in a WAV header, and records each part's recordingId right after its 2xx, so a retry after a
crash skips what the service already holds. Delivery is at-least-once per part: a crash between
the 2xx and the state write uploads that one part again (the service then holds a duplicate
file; the transcript/document step only uses the ids in state).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Literal

from edge_recorder.config.services.corti import CortiConfig
from edge_recorder.support.logs import get_logger
from edge_recorder.uplinks.base import (
    ChunkReader,
    ErrorKind,
    FinalizeResult,
    SessionIdentity,
    UplinkError,
    UplinkState,
)
from edge_recorder.uplinks.corti import flac
from edge_recorder.uplinks.corti.parts import Part, UploadPlan, plan_flac, plan_pcm, wav_header
from edge_recorder.uplinks.corti.rest import UPLOAD_PIECE, CortiRest
from edge_recorder.uplinks.corti.state import Encounter

log = get_logger(__name__)

Codec = Literal["pcm16", "flac"]


def lost_interaction(
    encounter: Encounter, detail: str, *, during_upload: bool = False
) -> UplinkError:
    """The service no longer knows the interaction: forget it so the engine re-delivers.

    During an upload the engine only retries that one recording (into a new interaction);
    the encounter's other recordings went to the lost one, so `start_processing` is told to
    ask for a re-delivery of the whole encounter first (the `redeliver` mark).
    """
    encounter.forget()
    if during_upload:
        encounter.mark_redeliver()
    return UplinkError(
        ErrorKind.NOT_FOUND,
        f"Corti lost the interaction of this encounter ({detail}); delivering it again",
        transport="rest",
        status=404,
        retryable=False,
    )


class CortiUploader:
    """`base.StoreForwardUploader` for Corti (store_chunk/finalize do not exist there)."""

    def __init__(
        self,
        rest: CortiRest,
        state: UplinkState,
        config: CortiConfig,
        *,
        codec: Codec,
        sample_rate: int = 16000,
        channels: int = 1,
    ) -> None:
        self.rest = rest
        self.state = state
        self.config = config
        self.codec: Codec = codec
        self._creating = asyncio.Lock()
        self.sample_rate = sample_rate
        self.channels = channels

    async def aclose(self) -> None:
        await self.rest.aclose()

    async def create_session(self, session: SessionIdentity) -> None:
        """`POST /interactions/` once per encounter (the id is remembered in `state`). The
        backlog and the live tap may both ask at the start of an encounter: one at a time, or
        Corti would get two interactions for it."""
        async with self._creating:
            await self._create_session(session)

    async def _create_session(self, session: SessionIdentity) -> None:
        encounter = Encounter(self.state, session.correlation_id)
        if encounter.interaction is not None:
            return
        body = {
            "encounter": {
                "identifier": session.correlation_id,
                "status": "in-progress",
                "type": self.config.encounter_type,
                "period": {"startedAt": datetime.now(UTC).isoformat(timespec="seconds")},
            }
        }
        interaction_id = await self.rest.create_interaction(body)
        encounter.set_interaction(interaction_id)
        log.info("corti interaction created")

    async def plan(self, length: int, read: ChunkReader) -> UploadPlan:
        """How to cut this recording (FLAC: one read-only scan of its frames)."""
        cfg = self.config
        max_bytes = int(cfg.upload_max_bytes)
        if self.codec == "flac":
            if length == 0:
                return UploadPlan(0, 1)
            layout = await flac.scan(length, read)
            return plan_flac(layout, length, max_bytes, cfg.upload_max_s)
        return plan_pcm(length, max_bytes, cfg.upload_max_s, self.sample_rate, self.channels)

    async def upload_recording(
        self,
        session: SessionIdentity,
        recording_seq: int,
        length: int,
        read: ChunkReader,
        *,
        done: Sequence[int] = (),
        on_chunk: Callable[[int], Awaitable[None]] | None = None,
        chunk_bytes: int | None = None,
    ) -> FinalizeResult:
        """Upload every part of recording `recording_seq` the service does not hold yet."""
        encounter = Encounter(self.state, session.correlation_id)
        interaction_id = encounter.interaction
        if interaction_id is None:
            raise UplinkError(
                ErrorKind.NOT_FOUND,
                "no Corti interaction for this encounter yet",
                transport="rest",
                retryable=False,
            )
        plan = encounter.plan(recording_seq)
        if plan is None or plan.length != length:
            try:
                plan = await self.plan(length, read)
            except ValueError as exc:
                raise UplinkError(ErrorKind.INVALID, str(exc), transport="rest") from None
            encounter.set_plan(recording_seq, plan)
        last = ""
        for part in plan.parts():
            held = encounter.part(recording_seq, part.number)
            if held is not None:
                last = held
                continue
            try:
                adopted = await self._adopt_unacknowledged(encounter, recording_seq, part.number)
                if adopted is None:
                    encounter.set_in_flight(recording_seq, part.number)  # before the POST
                    last = await self._upload_part(interaction_id, plan, part, read)
                else:
                    last = adopted
            except UplinkError as err:
                if err.kind is ErrorKind.NOT_FOUND:
                    raise lost_interaction(encounter, err.message, during_upload=True) from None
                raise
            encounter.set_part(recording_seq, part.number, last)
            encounter.clear_in_flight()
            log.info(
                "corti part uploaded",
                recording_seq=recording_seq,
                part=part.number,
                parts=plan.count,
                bytes=part.size,
            )
        return FinalizeResult(total_chunks=plan.count, request_id=last)

    async def _adopt_unacknowledged(
        self, encounter: Encounter, seq: int, number: int
    ) -> str | None:
        """After an upload of this part whose answer never came (the link broke after Corti
        stored the file, or the device crashed before writing the id down), ask the
        interaction what it holds: only this device uploads to it, one file at a time, so a
        file it lists that we never had acknowledged IS that upload. Adopting it instead of
        uploading again keeps the interaction free of duplicates."""
        interaction_id = encounter.interaction
        if encounter.in_flight != f"{seq}:{number}" or interaction_id is None:
            return None
        unknown = set(await self.rest.list_recordings(interaction_id)) - encounter.known_parts()
        if len(unknown) != 1:
            return None  # not stored (upload again), or not ours to tell apart
        (recording_id,) = unknown
        log.info("corti part found stored after an unanswered upload", recording_seq=seq,
                 part=number)  # fmt: skip
        return recording_id

    async def _upload_part(
        self, interaction_id: str, plan: UploadPlan, part: Part, read: ChunkReader
    ) -> str:
        if self.codec == "pcm16":
            header = wav_header(part.size, self.sample_rate, self.channels)
        else:  # FLAC parts after the first carry the recording's own metadata
            prefix = plan.prefix_bytes(part)
            header = await read(0, prefix) if prefix else b""

        failure: list[BaseException] = []

        async def body() -> AsyncIterator[bytes]:
            try:
                if header:
                    yield header
                offset = part.start
                while offset < part.end:
                    end = min(offset + UPLOAD_PIECE, part.end)
                    data = await read(offset, end)
                    if len(data) != end - offset:
                        raise ValueError(f"read({offset}, {end}) gave {len(data)} bytes")
                    yield data
                    offset = end
            except Exception as exc:
                failure.append(exc)  # aiohttp would report it as a connection error
                raise

        try:
            return await self.rest.upload(interaction_id, len(header) + part.size, body)
        except UplinkError:
            if failure:  # the spool failed (e.g. a corrupt record), not the network
                raise failure[0] from None
            raise
