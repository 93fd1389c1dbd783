"""gRPC front: AudioStreamingService on grpc.aio, metadata rules, status codes, faults.

Metadata [doc]: `authorization: Bearer <JWT>` (missing or invalid → UNAUTHENTICATED; a client
not on the allow list → PERMISSION_DENIED); with an app-only (S2S) token `user-guid` or
`external-user-id` is required (→ PERMISSION_DENIED, the gRPC form of the documented 403).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any, NoReturn, TypeAlias

import grpc

from devtools.emulators.aas import core, rules
from devtools.emulators.aas.auth import AuthError
from devtools.emulators.common.faults import GRPC_CODE_FOR_STATUS
from edge_recorder._proto.ambient.audio.v1 import audio_streaming_pb2 as pb
from edge_recorder._proto.ambient.audio.v1 import audio_streaming_pb2_grpc as pb_grpc
from edge_recorder.support.logs import get_logger

log = get_logger(__name__)

# RuleError.kind → gRPC status (RECONSTRUCTED: the service's codes are not published).
CODE_FOR_KIND = {
    "invalid": grpc.StatusCode.INVALID_ARGUMENT,
    "gap": grpc.StatusCode.OUT_OF_RANGE,
    "conflict": grpc.StatusCode.FAILED_PRECONDITION,
    "not_found": grpc.StatusCode.NOT_FOUND,
    "state": grpc.StatusCode.FAILED_PRECONDITION,
}

ServicerContext: TypeAlias = Any  # grpc.aio.ServicerContext (grpc ships no type hints)


class AudioStreamingServicer(pb_grpc.AudioStreamingServiceServicer):
    def __init__(self, ctx: core.Context) -> None:
        self.ctx = ctx

    async def _admit(self, context: ServicerContext, method: str) -> str:
        """Apply faults and the metadata rules; returns the practitioner id (may be empty)."""
        faults = self.ctx.faults
        delay = faults.take_latency_s("grpc", method)
        if delay:
            await asyncio.sleep(delay)
        fault = faults.take_failure("grpc", method)
        if fault is not None:
            code = GRPC_CODE_FOR_STATUS.get(fault.status, grpc.StatusCode.UNAVAILABLE)
            await context.abort(code, f"injected fault: {fault.status}")
        metadata = {k.lower(): v for k, v in context.invocation_metadata() or ()}
        try:
            identity = self.ctx.issuer.verify_header(_text(metadata.get("authorization")))
        except AuthError as exc:
            code = (
                grpc.StatusCode.PERMISSION_DENIED
                if exc.allow_list
                else grpc.StatusCode.UNAUTHENTICATED
            )
            await context.abort(code, exc.message)
        user = _text(metadata.get("user-guid")) or _text(metadata.get("external-user-id"))
        if identity.app_only and not user:
            await context.abort(
                grpc.StatusCode.PERMISSION_DENIED,
                "user-guid or external-user-id metadata is required with a server-to-server token",
            )
        return user or ""

    async def RetrieveConfiguration(
        self, request: pb.RetrieveConfigurationRequest, context: ServicerContext
    ) -> pb.RetrieveConfigurationResponse:
        await self._admit(context, "RetrieveConfiguration")
        return core.retrieve_configuration(self.ctx.settings)

    async def StartProcessing(
        self, request: pb.StartProcessingRequest, context: ServicerContext
    ) -> pb.StartProcessingResponse:
        await self._admit(context, "StartProcessing")
        try:
            return core.start_processing(self.ctx, request)
        except rules.RuleError as exc:
            await _abort(context, exc)

    async def RecordAmbient(
        self, request_iterator: AsyncIterator[pb.RecordAmbientRequest], context: ServicerContext
    ) -> AsyncIterator[pb.RecordAmbientResponse]:
        user = await self._admit(context, "RecordAmbient")
        if self.ctx.settings.fidelity == "live":
            # Observed live: total silence on the stream, whatever is sent. Nothing is kept.
            async for _ in request_iterator:
                pass
            return
        stream = core.RecordStream(
            self.ctx, "grpc", user, self.ctx.faults.take_drop("grpc", "RecordAmbient")
        )
        try:
            async for req in request_iterator:
                kind = req.WhichOneof("request")
                try:
                    if kind == "recording_open":
                        opens = stream.open(req.recording_open)
                        yield pb.RecordAmbientResponse(recording_opens=opens)
                    elif kind == "data_chunk":
                        stored = stream.chunk(req.data_chunk)
                        yield pb.RecordAmbientResponse(data_stored=stored)
                    elif kind == "recording_close":
                        closes = stream.close(req.recording_close)
                        yield pb.RecordAmbientResponse(recording_closes=closes)
                        return
                    else:
                        raise rules.RuleError("empty RecordAmbientRequest")
                except rules.RuleError as exc:
                    await _abort(context, exc)
                except core.StreamDropped as exc:
                    log.info("stream dropped by fault", received_bytes=stream.received)
                    await context.abort(grpc.StatusCode.UNAVAILABLE, str(exc))
        finally:
            stream.finish()


def _text(value: str | bytes | None) -> str | None:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return value


async def _abort(context: ServicerContext, exc: rules.RuleError) -> NoReturn:
    await context.abort(CODE_FOR_KIND.get(exc.kind, grpc.StatusCode.INVALID_ARGUMENT), exc.message)
    raise AssertionError("unreachable")  # context.abort raises


async def start_grpc(ctx: core.Context, host: str, port: int) -> tuple[grpc.aio.Server, int]:
    """A started grpc.aio server and the port it bound (port 0 picks one)."""
    server = grpc.aio.server(
        options=[
            ("grpc.max_receive_message_length", ctx.settings.max_chunk_bytes + 64 * 1024),
            ("grpc.keepalive_permit_without_calls", 1),
            ("grpc.http2.min_recv_ping_interval_without_data_ms", 5000),
        ]
    )
    pb_grpc.add_AudioStreamingServiceServicer_to_server(AudioStreamingServicer(ctx), server)
    bound = server.add_insecure_port(f"{host}:{port}")
    if bound == 0:
        raise OSError(f"cannot bind gRPC on {host}:{port}")
    await server.start()
    return server, bound
