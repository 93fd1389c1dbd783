"""`[aws]` validation messages, request headers / configurationEvent per service, error
kinds, and the factory's codec and rate checks."""

from __future__ import annotations

import json
from typing import Any

import pytest

from edge_recorder.config.loader import ConfigError, build_config
from edge_recorder.config.services.aws import AwsScribeConfig
from edge_recorder.uplinks.aws import protocol as p
from edge_recorder.uplinks.aws.factory import aws_uplinks
from edge_recorder.uplinks.base import ErrorKind

GOOD = {
    "domain_id": "dom-abcdefghij0123456",
    "subscription_id": "sub-ABCDEFGHIJ0123456789a",
    "output_s3_uri": "s3://notes-bkt/dev",
}
SECTION = {"header": "Plan", "instruction": "What happens next, as a list."}
TWO_CHANNELS = [
    {"channel_id": 0, "participant_role": "CLINICIAN"},
    {"channel_id": 1, "participant_role": "PATIENT"},
]


def errors_for(aws: dict[str, Any]) -> str:
    with pytest.raises(ConfigError) as caught:
        build_config({"aws": aws}, {})
    return "\n".join(caught.value.lines)


@pytest.mark.parametrize(
    ("aws", "message"),
    [
        ({"domain_id": "dom-short"}, "20-25 characters"),
        ({"domain_id": "xyz-abcdefghij0123456789"}, "(hai-|dom-)"),
        ({"subscription_id": "sub-tooshort"}, "sub- followed by 21"),
        ({"endpoint_url": "http://example.com"}, "must use TLS"),
        ({"endpoint_url": "http://127.0.0.1:9"}, "must be https://"),
        ({"region": "Mars"}, "region name"),
        ({"output_s3_uri": "bucket/x"}, "s3://bucket/prefix"),
        ({"resume_window_s": 6 * 3600}, "resume_window_s"),
        ({"channels": [{"channel_id": 0}, {"channel_id": 0}]}, "define both channels"),
        ({"channels": [{"channel_id": 1}]}, "take exactly two channel definitions"),
        (
            {"note_template": "PHYSICAL_SOAP", "note_template_sections": [SECTION]},
            "cannot carry custom sections",
        ),
        ({"note_template_settings": {"NoteTemplate": "GIRPP"}}, "note_template_settings"),
        ({"secret_access_key": "x"}, "secret_access_key"),  # no credentials in config text
    ],
)
def test_validation_messages(aws: dict[str, Any], message: str) -> None:
    assert message in errors_for(aws)


def test_connect_health_headers_and_configuration_event() -> None:
    cfg = AwsScribeConfig(**GOOD, channels=TWO_CHANNELS, note_template="DAP")
    headers = dict(p.request_headers(p.CONNECT_HEALTH, cfg, "h", "sid", 16000, "pcm"))
    assert headers["x-amzn-medscribe-domain-id"] == GOOD["domain_id"]
    assert headers["x-amzn-medscribe-sample-rate"] == "16000"
    assert headers["x-amzn-medscribe-media-encoding"] == "pcm"
    body = json.loads(p.configuration_event(p.CONNECT_HEALTH, cfg))
    assert body == {
        "channelDefinitions": [
            {"channelId": 0, "participantRole": "CLINICIAN"},
            {"channelId": 1, "participantRole": "PATIENT"},
        ],
        "postStreamActionSettings": {
            "clinicalNoteGenerationSettings": {
                "noteTemplateSettings": {"managedTemplate": {"templateType": "DAP"}}
            },
            "outputS3Uri": "s3://notes-bkt/dev",
        },
    }  # no encounterContext unless configured
    with_context = cfg.model_copy(update={"encounter_context": "follow-up visit"})
    assert json.loads(p.configuration_event(p.CONNECT_HEALTH, with_context))["encounterContext"]


def test_connect_health_requires_where_the_note_goes() -> None:
    cfg = AwsScribeConfig(**{**GOOD, "output_s3_uri": None})
    with pytest.raises(ValueError, match=r"aws\.output_s3_uri must be set"):
        p.configuration_event(p.CONNECT_HEALTH, cfg)


def test_a_custom_template_and_medical_coding_reach_the_event() -> None:
    cfg = AwsScribeConfig(
        **GOOD, note_template="GIRPP", note_template_sections=[SECTION], medical_coding=True
    )
    post = json.loads(p.configuration_event(p.CONNECT_HEALTH, cfg))["postStreamActionSettings"]
    assert post["clinicalNoteGenerationSettings"]["noteTemplateSettings"] == {
        "customTemplate": {
            "templateType": "GIRPP",
            "templateInstructions": [
                {"sectionHeader": "Plan", "sectionInstruction": "What happens next, as a list."}
            ],
        }
    }
    assert post["medicalCodeGenerationSettings"] == {"enabled": True}


def test_healthscribe_configuration_event_shape() -> None:
    cfg = AwsScribeConfig(
        output_s3_uri="s3://notes-bkt/dev", resource_access_role_arn="arn:r", note_template="GIRPP"
    )
    body = json.loads(p.configuration_event(p.HEALTHSCRIBE, cfg))
    assert body["ResourceAccessRoleArn"] == "arn:r"
    assert body["PostStreamAnalyticsSettings"]["ClinicalNoteGenerationSettings"] == {
        "NoteTemplate": "GIRPP",
        "OutputBucketName": "notes-bkt",
    }
    assert json.loads(p.end_of_session(p.HEALTHSCRIBE)) == {"Type": "END_OF_SESSION"}
    assert json.loads(p.end_of_session(p.CONNECT_HEALTH)) == {"type": "END_OF_SESSION"}
    with pytest.raises(ValueError, match="en-US only"):
        p.configuration_event(p.HEALTHSCRIBE, cfg.model_copy(update={"language_code": "multi"}))


def test_segments_parse_without_keeping_text() -> None:
    raw = {
        "transcriptSegment": {
            "segmentId": "s",
            "audioBeginOffset": 1.5,
            "audioEndOffset": 2.5,
            "isPartial": True,
            "content": "PHI",
        }
    }
    seg = p.parse_segment(p.CONNECT_HEALTH, json.dumps(raw).encode())
    assert (seg.begin_s, seg.end_s, seg.partial) == (1.5, 2.5, True) and "PHI" not in repr(seg)
    raw["transcriptSegment"]["audioEndOffset"] = 1.0
    with pytest.raises(ValueError, match="out of order"):
        p.parse_segment(p.CONNECT_HEALTH, json.dumps(raw).encode())


@pytest.mark.parametrize(
    ("etype", "status", "kind"),
    [
        ("validationException", None, ErrorKind.INVALID),
        ("internalFailureException", None, ErrorKind.SERVER),
        ("LimitExceededException", None, ErrorKind.THROTTLED),
        ("ThrottlingException:http://internal", 429, ErrorKind.THROTTLED),
        ("", 401, ErrorKind.AUTH),
        ("", 402, ErrorKind.THROTTLED),
        ("", 404, ErrorKind.FORBIDDEN),
        ("", 503, ErrorKind.UNAVAILABLE),
        ("", 599, ErrorKind.SERVER),
    ],
)
def test_error_kinds(etype: str, status: int | None, kind: ErrorKind) -> None:
    assert p.error_kind(etype, status) is kind


class _State:
    def get(self, key: str) -> str | None:
        return None

    def put(self, key: str, value: str) -> None: ...

    def drop(self, prefix: str) -> None: ...


def _config(service: str, codec: str, **aws: Any) -> Any:
    return build_config({"uplink": {"service": service}, "encoding": {"codec": codec}, "aws": aws})


def test_factory_codecs_and_flags() -> None:
    with pytest.raises(ValueError, match="opus"):
        aws_uplinks(_config("aws-connect-health", "opus", **GOOD), _State())
    with pytest.raises(ValueError, match=r"aws\.domain_id, aws\.subscription_id"):
        aws_uplinks(_config("aws-connect-health", "pcm16"), _State())
    pcm = aws_uplinks(_config("aws-connect-health", "pcm16", **GOOD), _State())
    assert pcm.live_enabled and not pcm.holds_copy and pcm.service == "aws-connect-health"
    assert pcm.identity("enc").correlation_id == "enc"
    opus = aws_uplinks(_config("aws-healthscribe", "opus"), _State())
    assert not opus.live_enabled  # no byte watermark from seconds: delivered once closed
