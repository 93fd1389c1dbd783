"""After the last upload of an encounter: check what Corti holds, then transcripts and documents.

The engine calls `start_processing` once every recording is uploaded. First the interaction's
recordings list must still hold every recordingId in state (a 404 or a missing id means the
service lost audio: the lost parts are forgotten and NOT_FOUND makes the engine re-deliver,
which uploads only those). Then, if configured, one transcript per uploaded file (synchronous
200, or 202 and status polling) and one document per templateKey from the joined transcript
text. Every id is kept in state, so a retry after a failure or a crash never asks twice.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

from edge_recorder.config.services.corti import CortiConfig
from edge_recorder.support.logs import get_logger
from edge_recorder.uplinks.base import (
    DataFormat,
    ErrorKind,
    LiveRecording,
    ProcessingStarted,
    RecordingRef,
    ServiceConfiguration,
    SessionIdentity,
    UplinkError,
    UplinkState,
)
from edge_recorder.uplinks.corti.rest import CortiRest, Transcript
from edge_recorder.uplinks.corti.state import Encounter
from edge_recorder.uplinks.corti.uploader import lost_interaction

log = get_logger(__name__)

WARN_BEFORE_S = 300.0


class CortiWorkflow:
    """`base.LiveStreamer` for Corti: probe, processing; no live recordings (see factory)."""

    def __init__(self, rest: CortiRest, state: UplinkState, config: CortiConfig) -> None:
        self.rest = rest
        self.state = state
        self.config = config

    async def aclose(self) -> None:
        await self.rest.aclose()

    async def retrieve_configuration(self, session: SessionIdentity) -> ServiceConfiguration:
        """Cheap and side-effect free: a token and `GET /templates/` prove the path works.

        No recording-length limit is returned: uploads are split, so an encounter may run as
        long as the device allows (the panel's limit warning stays on `[aas]` fallbacks)."""
        await self.rest.templates()
        return ServiceConfiguration(
            recording_locales=(self.config.primary_language,),
            default_locale=self.config.primary_language,
        )

    async def open_recording(
        self,
        session: SessionIdentity,
        recording: RecordingRef,
        data_format: DataFormat,
        starting_offset: int = 0,
        reason: str = "ui",
    ) -> LiveRecording:
        raise UplinkError(
            ErrorKind.INVALID,
            "Corti recordings are uploaded once closed; live streaming is not a delivery path",
            transport="rest",
        )

    async def start_processing(
        self, session: SessionIdentity, recording_guids: Sequence[str] = ()
    ) -> ProcessingStarted:
        encounter = Encounter(self.state, session.correlation_id)
        interaction_id = encounter.interaction
        if interaction_id is None:
            raise lost_interaction(encounter, "no interaction id in state")
        if encounter.redeliver:  # earlier recordings went to an interaction since lost
            encounter.clear_redeliver()
            raise UplinkError(
                ErrorKind.NOT_FOUND,
                "Corti lost the interaction while this encounter was uploading; "
                "delivering the encounter again",
                transport="rest",
                status=404,
                retryable=False,
            )
        held_ids = await self._verified(encounter, interaction_id)
        count = len(encounter.sequences)
        total = sum(p.length for s in encounter.sequences if (p := encounter.plan(s)))
        refs: list[tuple[str, str]] = [("interaction", interaction_id)]
        if self.config.transcribe:
            texts = []
            for rid in held_ids:
                transcript = await self._transcript(encounter, interaction_id, rid)
                refs.append(("transcript", transcript.id))
                if transcript.text:
                    texts.append(transcript.text)
            for key in self.config.template_keys:
                doc = await self._document(encounter, interaction_id, key, "\n".join(texts))
                refs.append((f"document:{key}", doc))
        log.info("corti processing requested", recordings=count, files=len(held_ids))
        return ProcessingStarted(session.correlation_id, count, total, tuple(refs))

    async def _verified(self, encounter: Encounter, interaction_id: str) -> list[str]:
        """Every stored recordingId, in order, after checking the service still lists it."""
        try:
            listed = set(await self.rest.list_recordings(interaction_id))
        except UplinkError as err:
            if err.kind is ErrorKind.NOT_FOUND:
                raise lost_interaction(encounter, err.message) from None
            raise
        ours: list[str] = []
        lost = 0
        for seq in encounter.sequences:
            plan = encounter.plan(seq)
            for part in plan.parts() if plan else []:
                rid = encounter.part(seq, part.number)
                if rid is None or rid not in listed:
                    encounter.lose_part(seq, part.number)
                    lost += 1
                else:
                    ours.append(rid)
        if lost:
            raise UplinkError(
                ErrorKind.NOT_FOUND,
                f"Corti no longer lists {lost} uploaded recording file(s); uploading them again",
                transport="rest",
                status=404,
                retryable=False,
            )
        return ours

    async def _transcript(self, encounter: Encounter, interaction_id: str, rid: str) -> Transcript:
        known = encounter.transcript(rid)
        if known is not None:
            try:
                found = await self.rest.get_transcript(interaction_id, known)
            except UplinkError as err:
                if err.kind is not ErrorKind.NOT_FOUND:
                    raise
            else:
                if found.status == "completed":
                    return found
                return await self._wait(interaction_id, found)
        body = {"recordingId": rid, "primaryLanguage": self.config.primary_language}
        try:
            created = await self.rest.create_transcript(interaction_id, body)
        except UplinkError as err:
            if err.kind is ErrorKind.NOT_FOUND:
                raise lost_interaction(encounter, err.message) from None
            raise
        encounter.set_transcript(rid, created.id)
        if created.status == "completed":
            return created
        return await self._wait(interaction_id, created)

    async def _wait(self, interaction_id: str, transcript: Transcript) -> Transcript:
        """Poll `…/transcripts/{id}/status` until completed (202 path), then fetch the text."""
        deadline = time.monotonic() + self.config.processing_timeout_s
        status = transcript.status
        while status != "completed":
            if status == "failed":
                raise UplinkError(
                    ErrorKind.SERVER, "Corti could not transcribe a recording", transport="rest"
                )
            if time.monotonic() > deadline:
                raise UplinkError(
                    ErrorKind.UNAVAILABLE, "transcript still processing; will ask again",
                    transport="rest",
                )  # fmt: skip
            await asyncio.sleep(self.config.poll_interval_s)  # the polling interval itself
            status = await self.rest.transcript_status(interaction_id, transcript.id)
        return await self.rest.get_transcript(interaction_id, transcript.id)

    async def _document(
        self, encounter: Encounter, interaction_id: str, key: str, text: str
    ) -> str:
        known = encounter.document(key)
        if known is not None:
            return known
        body = {
            "context": [{"type": "transcript", "data": {"text": text}}],
            "templateKey": key,
            "outputLanguage": self.config.document_output_language,
        }
        try:
            document_id = await self.rest.create_document(interaction_id, body)
        except UplinkError as err:
            if err.kind is ErrorKind.NOT_FOUND:
                raise lost_interaction(encounter, err.message) from None
            raise
        encounter.set_document(key, document_id)
        return document_id
