"""The AWS scribe uplink: one listening session per recording, resumed after a break.

`open_recording` resumes the recording's session (same session id, from the confirmed
watermark) within `aws.resume_window_s`; outside it, or when the service refuses the resume,
it raises NOT_FOUND so the engine restarts the recording from byte 0 in a new session (the
spool is the record). Store-and-forward is the same stream: bytes [0, length), then
END_OF_SESSION. Session ids and sent-byte bounds live in UplinkState under
`<service>:<encounter>:`; they are ids and counts, never PHI.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Awaitable, Callable, Sequence

from edge_recorder.config.services.aws import AwsScribeConfig
from edge_recorder.support.logs import get_logger
from edge_recorder.uplinks.aws.credentials import CredentialSource
from edge_recorder.uplinks.aws.protocol import ServiceProfile
from edge_recorder.uplinks.aws.stream import AudioSpec, AwsStream, Endpoint
from edge_recorder.uplinks.aws.transport import H2Request
from edge_recorder.uplinks.aws.watermark import SessionRecord, StreamPlan, plan_stream
from edge_recorder.uplinks.base import (
    ChunkReader,
    DataFormat,
    ErrorKind,
    FinalizeResult,
    ProcessingStarted,
    RecordingRef,
    ServiceConfiguration,
    SessionIdentity,
    UplinkError,
    UplinkState,
)

log = get_logger(__name__)

_REFUSED_RESUME = (ErrorKind.INVALID, ErrorKind.CONFLICT, ErrorKind.NOT_FOUND)


class AwsScribeClient:
    """LiveStreamer and StoreForwardUploader for `aws-connect-health` / `aws-healthscribe`."""

    def __init__(
        self,
        profile: ServiceProfile,
        cfg: AwsScribeConfig,
        spec: AudioSpec,
        state: UplinkState,
        creds: CredentialSource,
        *,
        connect_timeout_s: float,
        request_timeout_s: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.profile, self.cfg, self.spec, self.state, self.creds = profile, cfg, spec, state, creds
        self.endpoint = Endpoint.of(cfg, profile)
        self._connect_timeout_s, self._timeout_s, self._clock = (
            connect_timeout_s,
            request_timeout_s,
            clock,
        )
        self.segments: dict[str, list[int]] = {}  # encounter → [final, partial] this run

    # ---- LiveStreamer ------------------------------------------------------------------------
    async def retrieve_configuration(self, session: SessionIdentity) -> ServiceConfiguration:
        """Credentials resolve and the endpoint speaks HTTP/2 over TLS (no request sent)."""
        await self.creds.get()
        await H2Request.probe(
            self.endpoint.host,
            self.endpoint.port,
            ca_file=self.cfg.ca_file,
            connect_timeout_s=self._connect_timeout_s,
        )
        return ServiceConfiguration(
            max_recording_duration_s=self.profile.max_audio_s,
            max_chunk_bytes=256 * 1024,
            default_locale=self.cfg.language_code,
        )

    async def open_recording(
        self,
        session: SessionIdentity,
        recording: RecordingRef,
        data_format: DataFormat,
        starting_offset: int = 0,
        reason: str = "ui",
    ) -> AwsStream:
        key = self._key(session, recording.guid)
        counts = self.segments.setdefault(session.correlation_id, [0, 0])
        stream = await self._open(key, recording.sequence, starting_offset, counts)
        log.info(
            "aws stream opened",
            recording_id=recording.guid,
            session_id=stream.plan.session_id,
            offset=stream.plan.start,
            resumed=stream.plan.resumed,
        )
        return stream

    async def start_processing(
        self, session: SessionIdentity, recording_guids: Sequence[str] = ()
    ) -> ProcessingStarted:
        """Nothing to call: each session's END_OF_SESSION already started the service's
        post-stream processing. Reports the session ids and segment counts for status."""
        index = self.state.get(self._key(session, "sessions")) or ""
        refs = [("aws_session", sid) for sid in index.split()]
        final, partial = self.segments.get(session.correlation_id, [0, 0])
        refs += [("transcript_segments", str(final)), ("partial_segments", str(partial))]
        return ProcessingStarted(session.correlation_id, 0, 0, tuple(refs))

    # ---- StoreForwardUploader ----------------------------------------------------------------
    async def create_session(self, session: SessionIdentity) -> None:
        return None  # sessions start with their stream

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
        """Bytes [0, length) in one session, END_OF_SESSION; resumes a crashed upload's session
        within the window from its watermark, and is a no-op once done."""
        key = self._key(session, f"upload-{recording_seq}")
        record = SessionRecord.load(self.state.get(key))
        if self.state.get(key + ":done") and record is not None:
            return FinalizeResult(1, record.session_id)
        start = int(self.state.get(key + ":confirmed") or 0)
        counts = self.segments.setdefault(session.correlation_id, [0, 0])
        try:
            stream = await self._open(key, recording_seq, start, counts)
        except UplinkError as err:
            if err.kind is not ErrorKind.NOT_FOUND or start == 0:
                raise
            self.state.put(key + ":confirmed", "0")
            stream = await self._open(key, recording_seq, 0, counts)
        log.info(
            "aws stream opened",
            recording_seq=recording_seq,
            session_id=stream.plan.session_id,
            offset=stream.plan.start,
            resumed=stream.plan.resumed,
            transport="store_forward",
        )
        step = max(4096, int(chunk_bytes or 256 * 1024))
        try:
            offset = stream.plan.start
            while offset < length:
                end = min(length, offset + step)
                await stream.send(offset, await read(offset, end))
                offset = end
                if stream.confirmed > start:
                    start = stream.confirmed
                    self.state.put(key + ":confirmed", str(start))
            held = await stream.close()
        except BaseException:
            await stream.abort()
            raise
        if held < length:
            raise UplinkError(ErrorKind.CONFLICT, f"held {held} of {length}", transport="http2")
        self.state.put(key + ":done", "1")
        return FinalizeResult(1, stream.plan.session_id)

    async def aclose(self) -> None:
        return None  # connections belong to streams

    # ---- internals ---------------------------------------------------------------------------
    def _key(self, session: SessionIdentity, name: str) -> str:
        return f"{self.profile.name}:{session.correlation_id}:{name}"

    async def _open(
        self, key: str, sequence: int, starting_offset: int, counts: list[int]
    ) -> AwsStream:
        now = self._clock()
        record = SessionRecord.load(self.state.get(key))
        plan = plan_stream(
            record, starting_offset, now, self.cfg.resume_window_s, str(uuid.uuid4())
        )
        if plan is None:
            raise UplinkError(
                ErrorKind.NOT_FOUND,
                "the session can no longer be resumed (window passed or unknown): "
                "restarting the recording from byte 0 in a new session",
                transport="http2",
                retryable=False,
            )
        if not plan.resumed:
            record = SessionRecord(plan.session_id, now, 0)
            self.state.put(key, record.dump())
            index_key = key.rsplit(":", 1)[0] + ":sessions"
            known = self.state.get(index_key) or ""
            self.state.put(index_key, f"{known} {plan.session_id}".strip())
        assert record is not None
        base = record

        def reserve(bound: int) -> None:
            self.state.put(
                key, SessionRecord(base.session_id, base.opened_at, plan.prior_sent + bound).dump()
            )

        stream = AwsStream(plan, sequence, self.spec, reserve, self._timeout_s, counts)
        await self._open_signed(stream, plan)
        return stream

    async def _open_signed(self, stream: AwsStream, plan: StreamPlan) -> None:
        """Open with the current credentials; after an auth refusal, re-resolve them once."""
        for attempt in (1, 2):
            creds = await self.creds.get()
            try:
                await stream.open(
                    self.profile, self.cfg, self.endpoint, creds, self._connect_timeout_s
                )
                return
            except UplinkError as err:
                if err.kind is ErrorKind.AUTH and attempt == 1:
                    self.creds.refresh()
                    continue
                if plan.resumed and err.kind in _REFUSED_RESUME:
                    raise UplinkError(
                        ErrorKind.NOT_FOUND,
                        f"service refused to resume session ({err}): restarting the "
                        "recording from byte 0 in a new session",
                        transport="http2",
                        status=err.status,
                        retryable=False,
                    ) from err
                raise
