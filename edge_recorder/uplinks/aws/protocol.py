"""What differs between Connect Health listening sessions and HealthScribe streams: host,
path, SigV4 service name, header names, event names and JSON shapes; plus error mapping.

Connect Health is as the seed documents (`StartMedicalScribeListeningSession`); HealthScribe as
AWS documents `StartMedicalScribeStream` (research file section 3). Pure functions only.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from edge_recorder.config.services.aws import AwsScribeConfig
from edge_recorder.uplinks.base import ErrorKind


@dataclass(frozen=True)
class ServiceProfile:
    name: str  # uplink.service
    signing_name: str
    host_template: str
    path: str
    header_prefix: str
    rate_range: tuple[int, int]
    encodings: tuple[str, ...]
    events: tuple[str, str, str, str]  # configuration, audio, session control, transcript
    max_audio_s: float | None


CONNECT_HEALTH = ServiceProfile(
    name="aws-connect-health",
    signing_name="health-agent",
    host_template="streaming.health-agent.{region}.api.aws",
    path="/medical-scribe-stream/",
    header_prefix="x-amzn-medscribe-",
    rate_range=(8000, 48000),
    encodings=("pcm", "flac"),
    # Audio goes as `binaryAudioEvent` (the raw bytes as the event payload): AWS's model also
    # has `audioEvent`, whose `audioChunk` is base64 inside JSON, a third more bytes for nothing.
    events=("configurationEvent", "binaryAudioEvent", "sessionControlEvent", "transcriptEvent"),
    max_audio_s=None,  # the seed documents no duration limit
)
HEALTHSCRIBE = ServiceProfile(
    name="aws-healthscribe",
    signing_name="transcribe",
    host_template="transcribestreaming.{region}.amazonaws.com",
    path="/medical-scribe-stream",
    header_prefix="x-amzn-transcribe-",
    rate_range=(16000, 48000),
    encodings=("pcm", "ogg-opus", "flac"),
    events=("ConfigurationEvent", "AudioEvent", "SessionControlEvent", "TranscriptEvent"),
    max_audio_s=2 * 3600.0,
)
PROFILES = {p.name: p for p in (CONNECT_HEALTH, HEALTHSCRIBE)}
PROFILE_BY_PATH = {p.path: p for p in (CONNECT_HEALTH, HEALTHSCRIBE)}
CODEC_ENCODING = {"pcm16": "pcm", "flac": "flac", "opus": "ogg-opus"}


def media_encoding(profile: ServiceProfile, codec: str) -> str:
    """The `media-encoding` header for the spool codec; ValueError where the service has none."""
    enc = CODEC_ENCODING.get(codec)
    if enc is None or enc not in profile.encodings:
        raise ValueError(
            f"encoding.codec = {codec!r} cannot be sent to {profile.name} "
            f"(it accepts {', '.join(profile.encodings)}); use pcm16 or flac"
        )
    return enc


def check_sample_rate(profile: ServiceProfile, rate: int) -> None:
    low, high = profile.rate_range
    if not low <= rate <= high:
        raise ValueError(f"{profile.name} takes {low}-{high} Hz audio, the device records {rate}")


def request_headers(
    profile: ServiceProfile,
    cfg: AwsScribeConfig,
    host: str,
    session_id: str,
    rate: int,
    encoding: str,
) -> list[tuple[str, str]]:
    p = profile.header_prefix
    headers = [
        ("host", host),
        ("content-type", "application/vnd.amazon.eventstream"),
        (p + "session-id", session_id),
        (p + "language-code", cfg.language_code),
        (p + "sample-rate", str(rate)),
        (p + "media-encoding", encoding),
    ]
    if profile is CONNECT_HEALTH:
        headers += [
            (p + "domain-id", cfg.domain_id or ""),
            (p + "subscription-id", cfg.subscription_id or ""),
        ]
    return headers


def configuration_event(profile: ServiceProfile, cfg: AwsScribeConfig) -> bytes:
    """The JSON body of the configurationEvent (encounter context only when configured).

    ValueError names the key when the config lacks what the service requires."""
    body: dict[str, Any]
    if profile is CONNECT_HEALTH:
        body = {"postStreamActionSettings": _connect_health_post_stream(cfg)}
        if cfg.channels:
            body["channelDefinitions"] = [
                {"channelId": c.channel_id, "participantRole": c.participant_role}
                for c in cfg.channels
            ]
        if cfg.encounter_context:
            body["encounterContext"] = {"unstructuredContext": cfg.encounter_context}
    else:
        if cfg.language_code != "en-US":
            raise ValueError("aws.language_code: aws-healthscribe takes en-US only")
        body = {}
        if cfg.channels:
            body["ChannelDefinitions"] = [
                {"ChannelId": c.channel_id, "ParticipantRole": c.participant_role}
                for c in cfg.channels
            ]
        if cfg.resource_access_role_arn:
            body["ResourceAccessRoleArn"] = cfg.resource_access_role_arn
        note: dict[str, Any] = {"NoteTemplate": cfg.note_template}
        if cfg.output_s3_uri:
            note["OutputBucketName"] = cfg.output_s3_uri.removeprefix("s3://").split("/")[0]
        body["PostStreamAnalyticsSettings"] = {"ClinicalNoteGenerationSettings": note}
        if cfg.encounter_context:
            body["EncounterContext"] = {"UnstructuredContext": cfg.encounter_context}
    return json.dumps(body, separators=(",", ":")).encode()


def _connect_health_post_stream(cfg: AwsScribeConfig) -> dict[str, Any]:
    """`postStreamActionSettings`, which Connect Health requires (with its output location
    and note settings)."""
    if not cfg.output_s3_uri:
        raise ValueError(
            "aws.output_s3_uri must be set for aws-connect-health: the service requires "
            "postStreamActionSettings.outputS3Uri (where it writes the note)"
        )
    template: dict[str, Any]
    if cfg.note_template_sections:
        template = {
            "customTemplate": {
                "templateType": cfg.note_template,
                "templateInstructions": [
                    {"sectionHeader": s.header, "sectionInstruction": s.instruction}
                    for s in cfg.note_template_sections
                ],
            }
        }
    else:
        template = {"managedTemplate": {"templateType": cfg.note_template}}
    post: dict[str, Any] = {
        "outputS3Uri": cfg.output_s3_uri,
        "clinicalNoteGenerationSettings": {"noteTemplateSettings": template},
    }
    if cfg.medical_coding is not None:
        post["medicalCodeGenerationSettings"] = {"enabled": cfg.medical_coding}
    return post


def end_of_session(profile: ServiceProfile) -> bytes:
    key = "type" if profile is CONNECT_HEALTH else "Type"
    return json.dumps({key: "END_OF_SESSION"}).encode()


@dataclass(frozen=True)
class Segment:
    """One transcript segment's timing (the text is dropped on arrival: never kept or logged)."""

    segment_id: str
    begin_s: float
    end_s: float
    partial: bool


def parse_segment(profile: ServiceProfile, payload: bytes) -> Segment:
    """ValueError when the transcriptEvent does not carry a usable segment."""
    doc = json.loads(payload)
    if profile is CONNECT_HEALTH:
        seg = doc["transcriptSegment"]
        keys = ("segmentId", "audioBeginOffset", "audioEndOffset", "isPartial")
    else:
        seg = doc["TranscriptSegment"]
        keys = ("SegmentId", "BeginAudioTime", "EndAudioTime", "IsPartial")
    begin, end = float(seg[keys[1]]), float(seg[keys[2]])
    if not 0 <= begin <= end:
        raise ValueError("segment offsets out of order")
    return Segment(str(seg[keys[0]]), begin, end, bool(seg[keys[3]]))


# Exceptions (HTTP status at the start, or `:exception-type` in the stream) → what to do.
EXCEPTION_KINDS: dict[str, ErrorKind] = {
    "validationexception": ErrorKind.INVALID,
    "badrequestexception": ErrorKind.INVALID,
    "accessdeniedexception": ErrorKind.AUTH,
    "unrecognizedclientexception": ErrorKind.AUTH,
    "invalidsignatureexception": ErrorKind.AUTH,
    "expiredtokenexception": ErrorKind.AUTH,
    "resourcenotfoundexception": ErrorKind.FORBIDDEN,  # domain/subscription: a config fault
    "servicequotaexceededexception": ErrorKind.THROTTLED,
    "limitexceededexception": ErrorKind.THROTTLED,
    "throttlingexception": ErrorKind.THROTTLED,
    "conflictexception": ErrorKind.CONFLICT,
    "internalfailureexception": ErrorKind.SERVER,
    "internalserverexception": ErrorKind.SERVER,
    "serviceunavailableexception": ErrorKind.UNAVAILABLE,
}
STATUS_KINDS = {
    400: ErrorKind.INVALID,
    401: ErrorKind.AUTH,
    402: ErrorKind.THROTTLED,
    403: ErrorKind.AUTH,
    404: ErrorKind.FORBIDDEN,
    409: ErrorKind.CONFLICT,
    429: ErrorKind.THROTTLED,
    500: ErrorKind.SERVER,
    503: ErrorKind.UNAVAILABLE,
}


def error_kind(exception_type: str, status: int | None) -> ErrorKind:
    kind = EXCEPTION_KINDS.get(exception_type.lower().split(":")[0])
    if kind is None and status is not None:
        kind = STATUS_KINDS.get(status, ErrorKind.SERVER if status >= 500 else ErrorKind.INVALID)
    return kind or ErrorKind.SERVER
