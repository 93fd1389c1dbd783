"""Build and read AAS protocol messages; shared by the gRPC and WebSocket clients.

The WebSocket JSON is the proto3 JSON mapping of the same messages, so both transports build
protobuf objects here and the WebSocket client serialises them with `json_format`.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from edge_recorder._proto.ambient.audio.v1 import audio_streaming_pb2 as pb
from edge_recorder.uplinks.base import (
    DataFormat,
    ProcessingStarted,
    RecordingRef,
    ServiceConfiguration,
    SessionIdentity,
)


def identity_metadata(session: SessionIdentity) -> list[tuple[str, str]]:
    """Per-call identity headers: user (required with S2S tokens), request id, customer."""
    pairs: list[tuple[str, str]] = []
    if session.user_guid:
        pairs.append(("user-guid", session.user_guid))
    if session.external_user_id:
        pairs.append(("external-user-id", session.external_user_id))
    pairs.append(("x-ms-request-id", str(uuid.uuid4())))
    pairs.append(("customer-id", session.customer_id))
    return pairs


def session_data(session: SessionIdentity) -> pb.AmbientSessionData:
    data = pb.AmbientSessionData(
        product_id=session.product_id,
        partner_id=session.partner_id,
        customer_id=session.customer_id,
        correlation_id=session.correlation_id,
        ehr_instance_id=session.ehr_instance_id or "",
        locale_info=pb.LocaleInfo(
            recording_locales=[session.locale],
            encounter_report_locale=session.locale,
            encounter_ux_locale=session.locale,
        ),
    )
    if session.external_user_id:
        data.external_identifiers.append(
            pb.ExternalIdentifier(type="userId", identifier=session.external_user_id)
        )
    return data


def data_format(fmt: DataFormat) -> pb.DataFormat:
    if fmt.kind == "pcm":
        return pb.DataFormat(
            pcm=pb.PcmFormat(
                sample_rate_hz=fmt.sample_rate_hz, bitcount=fmt.bitcount, channels=fmt.channels
            )
        )
    if fmt.kind == "opus":
        return pb.DataFormat(
            opus=pb.OpusFormat(sample_rate_hz=fmt.sample_rate_hz, channels=fmt.channels)
        )
    if fmt.kind == "webm_opus":
        return pb.DataFormat(webm_opus=pb.WebmOpusFormat(sample_rate_hz=fmt.sample_rate_hz))
    return pb.DataFormat(byte_stream=pb.ByteStreamFormat())


def data_format_from_pb(msg: pb.DataFormat) -> DataFormat:
    which = msg.WhichOneof("format")
    if which == "pcm":
        return DataFormat("pcm", msg.pcm.sample_rate_hz, msg.pcm.bitcount, msg.pcm.channels)
    if which == "opus":
        return DataFormat("opus", msg.opus.sample_rate_hz, 16, msg.opus.channels)
    if which == "webm_opus":
        return DataFormat("webm_opus", msg.webm_opus.sample_rate_hz, 16, 1)
    return DataFormat("byte_stream", 0, 0, 0)


def recording_open(
    session: SessionIdentity,
    recording: RecordingRef,
    fmt: DataFormat,
    starting_offset: int,
    reason: str,
) -> pb.RecordingOpenRequest:
    return pb.RecordingOpenRequest(
        recording_id=recording.guid,
        data_format=data_format(fmt),
        ambient_session_data=session_data(session),
        actions=list(session.actions),
        reason=reason,
        starting_offset=starting_offset,
        sequence_number=recording.sequence,
    )


def recording_close(
    recording: RecordingRef, length_s: float, reason: str
) -> pb.RecordingCloseRequest:
    return pb.RecordingCloseRequest(
        recording_id=recording.guid, recording_length_seconds=length_s, reason=reason
    )


def retrieve_configuration_request(session: SessionIdentity) -> pb.RetrieveConfigurationRequest:
    return pb.RetrieveConfigurationRequest(
        partner_id=session.partner_id,
        customer_id=session.customer_id,
        product_id=session.product_id,
    )


def configuration_from_pb(msg: pb.RetrieveConfigurationResponse) -> ServiceConfiguration:
    loc = msg.locale_settings
    return ServiceConfiguration(
        formats=tuple(data_format_from_pb(f) for f in msg.supported_formats),
        recording_locales=tuple(loc.recording_locales),
        report_locales=tuple(loc.report_locales),
        ux_locales=tuple(loc.ux_locales),
        default_locale=loc.default_locale or None,
        max_recording_duration_s=float(msg.max_recording_duration_seconds) or None,
        warn_before_s=float(msg.warning_lead_time_seconds) or None,
        max_chunk_bytes=msg.max_chunk_bytes or None,
    )


def start_processing_request(
    session: SessionIdentity, recording_guids: Sequence[str]
) -> pb.StartProcessingRequest:
    return pb.StartProcessingRequest(
        ambient_session_data=session_data(session),
        recording_ids=list(recording_guids),
        actions=list(session.actions),
    )


def processing_started_from_pb(msg: pb.StartProcessingResponse) -> ProcessingStarted:
    return ProcessingStarted(
        correlation_id=msg.correlation_id,
        recording_count=msg.recording_count,
        total_bytes=msg.total_bytes,
    )


def length_seconds(fmt: DataFormat, length_bytes: int, fallback_s: float | None) -> float:
    """Recording length for RecordingClose: exact for PCM, else what the caller measured."""
    rate = fmt.bytes_per_second
    if rate:
        return length_bytes / rate
    return fallback_s or 0.0
