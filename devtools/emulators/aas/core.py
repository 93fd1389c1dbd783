"""The service's behaviour, shared by the gRPC and WebSocket fronts.

A `RecordStream` is one RecordAmbient stream: RecordingOpen → DataChunks → RecordingClose.
It validates with the same rules and stores through the same Store whichever transport
carries it; the fronts only translate messages and map `RuleError.kind` to their status codes.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

from google.protobuf import json_format

from devtools.emulators.aas import rules
from devtools.emulators.aas.auth import Issuer
from devtools.emulators.aas.settings import EmulatorSettings
from devtools.emulators.aas.store import Store
from devtools.emulators.aas.uploads import Uploads
from devtools.emulators.common.faults import Faults
from edge_recorder._proto.ambient.audio.v1 import audio_streaming_pb2 as pb
from edge_recorder.support.logs import get_logger

log = get_logger(__name__)


@dataclass
class Context:
    """Everything the fronts share; built once by app.py."""

    settings: EmulatorSettings
    store: Store
    uploads: Uploads
    issuer: Issuer
    faults: Faults


class StreamDropped(Exception):
    """A drop_stream fault fired: the front cuts the connection without a close."""


def _format_json(fmt: pb.DataFormat) -> dict[str, Any]:
    return json_format.MessageToDict(fmt, preserving_proto_field_name=False)


def validate_open(req: pb.RecordingOpenRequest) -> list[str]:
    """Why a RecordingOpen cannot be accepted (empty when it can)."""
    errors = []
    if not rules.valid_uuid(req.recording_id):
        errors.append("recordingId must be a GUID")
    which = req.data_format.WhichOneof("format") if req.HasField("data_format") else None
    if which is None:
        errors.append("dataFormat is required (pcm, opus, webmOpus or byteStream)")
    elif which == "pcm":
        pcm = req.data_format.pcm
        if not 8000 <= pcm.sample_rate_hz <= 48000:
            errors.append("dataFormat.pcm.sampleRateHz must be 8000-48000")
        if pcm.bitcount not in (8, 16, 24, 32):
            errors.append("dataFormat.pcm.bitcount must be 8, 16, 24 or 32")
        if not 1 <= pcm.channels <= 8:
            errors.append("dataFormat.pcm.channels must be 1-8")
    data = req.ambient_session_data
    if not rules.valid_correlation_id(data.correlation_id):
        errors.append("ambientSessionData.correlationId is required (letters, digits, _ - |)")
    for name in ("product_id", "customer_id"):
        if not rules.valid_uuid(getattr(data, name)):
            errors.append(f"ambientSessionData.{name} must be a UUID")
    if data.partner_id and not rules.valid_uuid(data.partner_id):
        errors.append("ambientSessionData.partner_id must be a UUID")
    if req.starting_offset < 0:
        errors.append("startingOffset must be >= 0")
    if req.sequence_number < 0:
        errors.append("sequenceNumber must be >= 0")
    return errors


def _session_fields(data: pb.AmbientSessionData, user: str) -> dict[str, str]:
    external = next((x.identifier for x in data.external_identifiers if x.identifier), user)
    return {
        "product_id": data.product_id,
        "partner_id": data.partner_id,
        "customer_id": data.customer_id,
        "ehr_instance_id": data.ehr_instance_id,
        "external_user_id": external,
    }


class RecordStream:
    """State of one RecordAmbient stream."""

    def __init__(self, ctx: Context, transport: str, user: str, drop_after: int | None) -> None:
        self.ctx = ctx
        self.transport = transport
        self.user = user
        self.drop_after = drop_after
        self.received = 0
        self.cid = ""
        self.key = ""
        self.closed = False

    @property
    def opened(self) -> bool:
        return bool(self.key)

    def open(self, req: pb.RecordingOpenRequest) -> pb.RecordingOpens:
        if self.opened:
            raise rules.WrongState("this stream already opened a recording")
        errors = validate_open(req)
        if errors:
            raise rules.RuleError(rules.join_errors(errors))
        data = req.ambient_session_data
        rec, held = self.ctx.store.open_stream(
            data.correlation_id,
            req.recording_id.lower(),
            self.transport,
            _format_json(req.data_format),
            req.sequence_number,
            _session_fields(data, self.user),
            req.starting_offset,
        )
        self.cid, self.key = data.correlation_id, rec.key
        log.info(
            "recording opened",
            transport=self.transport,
            recording_id=rec.key,
            sequence=rec.sequence_number,
            held_bytes=held,
            starting_offset=req.starting_offset,
        )
        return pb.RecordingOpens(
            recording_id=rec.recording_id, data_stored=held, sequence_number=rec.sequence_number
        )

    def chunk(self, req: pb.DataChunkRequest) -> pb.DataStored:
        if not self.opened or self.closed:
            raise rules.WrongState("DataChunk outside an open recording")
        limit = self.ctx.settings.max_chunk_bytes
        if len(req.data) > limit:
            raise rules.RuleError(f"DataChunk of {len(req.data)} bytes exceeds {limit} bytes")
        data = req.data
        if self.drop_after is not None and self.received + len(data) > self.drop_after:
            keep = max(0, self.drop_after - self.received)
            if keep:
                self.ctx.store.write(self.cid, self.key, req.data_start, data[:keep])
            raise StreamDropped(f"drop_stream fault after {self.drop_after} bytes")
        held = self.ctx.store.write(self.cid, self.key, req.data_start, data)
        self.received += len(data)
        return pb.DataStored(data_stored=held)

    def close(self, req: pb.RecordingCloseRequest) -> pb.RecordingCloses:
        if not self.opened or self.closed:
            raise rules.WrongState("RecordingClose outside an open recording")
        if req.recording_id and req.recording_id.lower() != self.key:
            raise rules.RuleError("RecordingClose names another recordingId than the open one")
        held = self.ctx.store.end_stream(
            self.cid,
            self.key,
            closed=True,
            length_s=req.recording_length_seconds,
            reason=req.reason,
        )
        self.closed = True
        log.info("recording closed", transport=self.transport, recording_id=self.key, bytes=held)
        return pb.RecordingCloses(data_stored=held)

    def finish(self) -> None:
        """The stream ended; without a close the recording stays open (resumable)."""
        if self.opened and not self.closed:
            with contextlib.suppress(rules.NotFound):  # forgotten meanwhile by a fault
                self.ctx.store.end_stream(self.cid, self.key, closed=False, length_s=0, reason="")
            log.info("stream ended without close", transport=self.transport, recording_id=self.key)


def retrieve_configuration(settings: EmulatorSettings) -> pb.RetrieveConfigurationResponse:
    formats = [
        pb.DataFormat(pcm=pb.PcmFormat(sample_rate_hz=16000, bitcount=16, channels=1)),
        pb.DataFormat(opus=pb.OpusFormat(sample_rate_hz=16000, channels=1)),
        pb.DataFormat(webm_opus=pb.WebmOpusFormat(sample_rate_hz=48000)),
        pb.DataFormat(byte_stream=pb.ByteStreamFormat()),
    ]
    return pb.RetrieveConfigurationResponse(
        supported_formats=formats,
        locale_settings=pb.LocaleSettings(
            recording_locales=settings.recording_locales,
            report_locales=settings.report_locales,
            ux_locales=settings.report_locales,
            default_locale=settings.recording_locales[0],
        ),
        max_recording_duration_seconds=settings.max_recording_duration_s,
        warning_lead_time_seconds=settings.warning_lead_time_s,
        max_chunk_bytes=settings.max_chunk_bytes,
    )


def start_processing(ctx: Context, req: pb.StartProcessingRequest) -> pb.StartProcessingResponse:
    cid = req.ambient_session_data.correlation_id
    if not rules.valid_correlation_id(cid):
        raise rules.RuleError("ambientSessionData.correlationId is required")
    keys = [r.lower() for r in req.recording_ids]
    count, total = ctx.store.start_processing(cid, keys)
    log.info("processing started", recordings=count, total_bytes=total)
    return pb.StartProcessingResponse(correlation_id=cid, recording_count=count, total_bytes=total)
