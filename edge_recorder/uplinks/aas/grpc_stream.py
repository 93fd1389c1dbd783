"""AAS over gRPC (grpc.aio): RetrieveConfiguration, RecordAmbient with resume, StartProcessing.

A `RecordAmbient` stream carries one recording. The open answer (`RecordingOpens.data_stored`)
says how many bytes the server already holds, so after any break the delivery engine reopens
the same recording GUID with the offset it knows and continues from what the server reports.
Chunks carry their byte offset; re-sending stored bytes is harmless, a gap is refused.
Keepalive pings run only while a call is active, so an idle device does not trip a server's
ping policy; the token travels in per-call metadata and a 401 costs one refresh and retry.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import grpc
from grpc import aio

from edge_recorder._proto.ambient.audio.v1 import audio_streaming_pb2 as pb
from edge_recorder._proto.ambient.audio.v1 import audio_streaming_pb2_grpc as pb_grpc
from edge_recorder.config.model import Config
from edge_recorder.support.logs import get_logger
from edge_recorder.uplinks.aas import messages as msgs
from edge_recorder.uplinks.aas.grpc_errors import error_from_rpc, error_from_status
from edge_recorder.uplinks.aas.recording import LiveRecordingBase, Waits
from edge_recorder.uplinks.auth import TokenProvider, call_with_token
from edge_recorder.uplinks.base import (
    NO_ANSWER,
    DataFormat,
    ErrorKind,
    ProcessingStarted,
    RecordingRef,
    ServiceConfiguration,
    SessionIdentity,
    UplinkError,
)
from edge_recorder.uplinks.limits import STREAM_MESSAGE_MAX_BYTES
from edge_recorder.uplinks.live import LiveRecordingState

log = get_logger(__name__)


def channel_options(
    keepalive_s: float,
    timeout_s: float,
    reconnect_initial_s: float = 1.0,
    reconnect_max_s: float = 60.0,
    connect_timeout_s: float = 10.0,
) -> list[tuple[str, int]]:
    """Channel settings: keepalive while a stream is open, bounded reconnect back-off, and
    connections of its own (so closing the channel really closes them).

    A dead link is noticed within keepalive + timeout. gRPC's own reconnect back-off (up to
    120 s by default) would override the delivery engine's: a call made while the channel
    waits fails at once without trying, so it is capped at `uplink.retry_max_s`.
    """
    return [
        ("grpc.keepalive_time_ms", int(keepalive_s * 1000)),
        ("grpc.keepalive_timeout_ms", int(min(timeout_s, 20.0) * 1000)),
        ("grpc.keepalive_permit_without_calls", 0),
        ("grpc.http2.max_pings_without_data", 0),
        # No BDP probing: it sizes what the device receives (acks), at a ping and wake-ups a second.
        ("grpc.http2.bdp_probe", 0),
        ("grpc.max_receive_message_length", STREAM_MESSAGE_MAX_BYTES),
        ("grpc.initial_reconnect_backoff_ms", int(reconnect_initial_s * 1000)),
        # gRPC core uses this as the minimum connect timeout of each attempt.
        ("grpc.min_reconnect_backoff_ms", int(connect_timeout_s * 1000)),
        ("grpc.max_reconnect_backoff_ms", int(max(reconnect_max_s, reconnect_initial_s) * 1000)),
        # gRPC core shares connections between channels to the same target through a global
        # subchannel pool: a closed channel's connection lives on while anything references
        # it (another channel, a call object of the closed one), and the next channel gets
        # it back, so the delivery engine's redial would keep a broken connection.
        ("grpc.use_local_subchannel_pool", 1),
    ]


def channel_credentials(
    ca_file: Path | None, cert_file: Path | None = None, key_file: Path | None = None
) -> Any:
    """TLS credentials: the CA bundle (system roots when unset), optional client certificate."""
    root = ca_file.read_bytes() if ca_file else None
    cert = cert_file.read_bytes() if cert_file else None
    key = (key_file or cert_file).read_bytes() if cert_file else None
    return grpc.ssl_channel_credentials(
        root_certificates=root, private_key=key, certificate_chain=cert
    )


class GrpcRecording(LiveRecordingBase):
    """One open recording on a RecordAmbient stream (implements `base.LiveRecording`)."""

    def __init__(
        self,
        call: Any,
        recording: RecordingRef,
        data_format: DataFormat,
        state: LiveRecordingState,
        waits: Waits,
    ) -> None:
        super().__init__(recording, data_format, state, waits)
        self._call = call
        self._reader = asyncio.create_task(self._read_responses())

    async def send(self, offset: int, data: bytes) -> None:
        self._state.check_send(offset, len(data))
        request = pb.RecordAmbientRequest(
            data_chunk=pb.DataChunkRequest(data_start=offset, data=data)
        )
        await self._write(request)

    async def close(self, reason: str = "stop", length_s: float | None = None) -> int:
        """Send RecordingClose, half-close, and wait for the server's final byte count."""
        close = self._begin_close(reason, length_s)
        await self._write(pb.RecordAmbientRequest(recording_close=close))
        with contextlib.suppress(aio.AioRpcError, asyncio.InvalidStateError):
            await self._call.done_writing()  # on failure the reader reports why
        try:
            final = await self._state.wait_final(self._waits.close_s)
        finally:
            await self._finish_reader()
        log.info("recording closed", transport="grpc", stored_bytes=final, seq=self.sequence)
        return final

    async def abort(self) -> None:
        self._call.cancel()
        await self._finish_reader()

    async def _write(self, request: pb.RecordAmbientRequest) -> None:
        try:
            async with asyncio.timeout(self._timeout):  # no extra task per chunk
                await self._call.write(request)
        except aio.AioRpcError as exc:
            # the acks that came ahead of the status are the reader's to count first: the
            # write may see the dead call before the reader has taken them
            await self._reader_settled()
            err = error_from_rpc(exc)
            await self._state.failed(err)
            raise self._state.error or err from None
        except (asyncio.InvalidStateError, aio.UsageError):
            await self._reader_settled()  # the reader knows the server's status, if any
            err = UplinkError(ErrorKind.UNAVAILABLE, "stream is no longer open", transport="grpc")
            await self._state.failed(err)
            raise self._state.error or err from None
        except TimeoutError:
            err = UplinkError(
                ErrorKind.UNAVAILABLE,
                f"write not accepted within {self._timeout:g}s (flow control stalled)",
                transport="grpc",
            )
            await self._state.failed(err)
            self._call.cancel()
            raise err from None

    async def _read_responses(self) -> None:
        try:
            while True:
                response = await self._call.read()
                if response is aio.EOF:
                    await self._state.ended()
                    return
                which = response.WhichOneof("response")
                if which == "recording_opens":
                    opened = response.recording_opens
                    await self._state.opened(opened.data_stored, opened.sequence_number)
                elif which == "data_stored":
                    await self._state.stored(response.data_stored.data_stored)
                elif which == "recording_closes":
                    await self._state.closed(response.recording_closes.data_stored)
        except aio.AioRpcError as exc:
            await self._state.failed(error_from_rpc(exc))
        except asyncio.CancelledError:
            await self._state.failed(
                UplinkError(ErrorKind.UNAVAILABLE, "stream aborted", transport="grpc")
            )
            raise

    async def _reader_settled(self) -> None:
        """Give the reader a bounded moment to record the acks and the server's real status
        that arrived before a write failed."""
        await asyncio.wait({self._reader}, timeout=1.0)

    async def _finish_reader(self) -> None:
        if not self._reader.done():
            self._reader.cancel()
        await asyncio.gather(self._reader, return_exceptions=True)


class AasGrpcClient:
    """The device's gRPC connection to AAS (implements `base.LiveStreamer`)."""

    def __init__(
        self,
        target: str,
        tokens: TokenProvider,
        *,
        credentials: Any = None,
        keepalive_s: float = 20.0,
        connect_timeout_s: float = 10.0,
        request_timeout_s: float = 30.0,
        reconnect_initial_s: float = 1.0,
        reconnect_max_s: float = 60.0,
        open_answer_s: float = 5.0,
        close_answer_s: float = 60.0,
    ) -> None:
        self._target = target
        self._tokens = tokens
        self._credentials = credentials
        self._options = channel_options(
            keepalive_s, request_timeout_s, reconnect_initial_s, reconnect_max_s, connect_timeout_s
        )
        self._timeout = request_timeout_s
        self._waits = Waits(request_timeout_s, open_answer_s, close_answer_s)
        self._channel: Any = None
        self._stub: Any = None

    @classmethod
    def from_config(cls, config: Config, tokens: TokenProvider) -> AasGrpcClient:
        aas, uplink = config.aas, config.uplink
        if not aas.grpc_target:
            raise ValueError("aas.grpc_target is not set")
        creds = (
            channel_credentials(aas.ca_file, aas.client_cert_file, aas.client_key_file)
            if aas.tls
            else None
        )
        return cls(
            aas.grpc_target,
            tokens,
            credentials=creds,
            keepalive_s=uplink.keepalive_s,
            reconnect_initial_s=uplink.retry_initial_s,
            reconnect_max_s=uplink.retry_max_s,
            connect_timeout_s=uplink.connect_timeout_s,
            request_timeout_s=uplink.request_timeout_s,
            open_answer_s=aas.open_answer_s,
            close_answer_s=aas.close_answer_s,
        )

    def _get_stub(self) -> Any:
        if self._stub is None:
            if self._credentials is None:
                self._channel = aio.insecure_channel(self._target, options=self._options)
            else:
                self._channel = aio.secure_channel(
                    self._target, self._credentials, options=self._options
                )
            self._stub = pb_grpc.AudioStreamingServiceStub(self._channel)
        return self._stub

    async def aclose(self) -> None:
        if self._channel is not None:
            await self._channel.close()
            self._channel = self._stub = None

    def _metadata(self, token: str, session: SessionIdentity) -> list[tuple[str, str]]:
        return [("authorization", f"Bearer {token}"), *msgs.identity_metadata(session)]

    async def retrieve_configuration(self, session: SessionIdentity) -> ServiceConfiguration:
        request = msgs.retrieve_configuration_request(session)

        async def call(token: str) -> ServiceConfiguration:
            response = await self._unary(
                self._get_stub().RetrieveConfiguration, request, token, session
            )
            return msgs.configuration_from_pb(response)

        return await call_with_token(self._tokens, call)

    async def start_processing(
        self, session: SessionIdentity, recording_guids: Sequence[str] = ()
    ) -> ProcessingStarted:
        request = msgs.start_processing_request(session, recording_guids)

        async def call(token: str) -> ProcessingStarted:
            response = await self._unary(self._get_stub().StartProcessing, request, token, session)
            return msgs.processing_started_from_pb(response)

        result = await call_with_token(self._tokens, call)
        log.info("processing started", transport="grpc", recording_count=result.recording_count)
        return result

    async def open_recording(
        self,
        session: SessionIdentity,
        recording: RecordingRef,
        data_format: DataFormat,
        starting_offset: int = 0,
        reason: str = "ui",
    ) -> GrpcRecording:
        """Open (or resume, with `starting_offset` > 0) a recording; see `handshake` for what
        happens when the server never answers the open."""
        request = pb.RecordAmbientRequest(
            recording_open=msgs.recording_open(
                session, recording, data_format, starting_offset, reason
            )
        )

        async def attempt(token: str) -> GrpcRecording:
            call = self._get_stub().RecordAmbient(metadata=self._metadata(token, session))
            try:
                await asyncio.wait_for(call.write(request), self._timeout)
            except aio.AioRpcError as exc:
                raise error_from_rpc(exc) from None
            except TimeoutError:
                call.cancel()
                raise UplinkError(
                    ErrorKind.UNAVAILABLE,
                    f"RecordingOpen not accepted for sending within {self._timeout:g}s",
                    transport="grpc",
                    status=NO_ANSWER,
                ) from None
            except (asyncio.InvalidStateError, aio.UsageError):
                raise await _status_of(call) from None
            state = LiveRecordingState("grpc", 0, recording.sequence, open_confirmed=False)
            rec = GrpcRecording(call, recording, data_format, state, self._waits)
            await rec.handshake("grpc", starting_offset)
            return rec

        rec = await call_with_token(self._tokens, attempt)
        log.info(
            "recording opened",
            transport="grpc",
            seq=rec.sequence,
            resume_offset=rec.resume_offset,
            starting_offset=starting_offset,
        )
        return rec

    async def _unary(self, method: Any, request: Any, token: str, session: SessionIdentity) -> Any:
        try:
            return await method(
                request,
                metadata=self._metadata(token, session),
                timeout=self._timeout,
                wait_for_ready=False,
            )
        except aio.AioRpcError as exc:
            raise error_from_rpc(exc) from None


async def _status_of(call: Any) -> UplinkError:
    """The status a stream ended with, as an `UplinkError` (bounded wait)."""
    try:
        code = await asyncio.wait_for(call.code(), 5.0)
        details = await call.details()
    except (TimeoutError, aio.AioRpcError):
        return UplinkError(ErrorKind.UNAVAILABLE, "stream ended without status", transport="grpc")
    if code == grpc.StatusCode.OK:
        return UplinkError(
            ErrorKind.PROTOCOL, "server ended the stream without answering", transport="grpc"
        )
    return error_from_status(code.name, details)
