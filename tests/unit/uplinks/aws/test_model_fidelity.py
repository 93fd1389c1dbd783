"""The device's Connect Health events and config choices against AWS's published service model
(botocore's connecthealth service-2.json), read here at test time, never retyped."""

from __future__ import annotations

import json
from typing import Any, get_args

import pytest

from devtools.emulators.aws import model
from edge_recorder.config.services.aws import (
    CUSTOM_TEMPLATE_BASES,
    AwsScribeConfig,
    ChannelDefinition,
    NoteTemplate,
)
from edge_recorder.uplinks.aws import protocol as p

GOOD: dict[str, Any] = {
    "domain_id": "dom-abcdefghij0123456",
    "subscription_id": "sub-ABCDEFGHIJ0123456789a",
    "output_s3_uri": "s3://notes-bkt/dev",
}
EVENTS = model.input_event_shapes()


@pytest.mark.parametrize(
    "settings",
    [
        {},
        {"note_template": "BEHAVIORAL_SOAP", "medical_coding": False},
        {
            "note_template": "SIRP",
            "note_template_sections": [
                {"header": "Subjective_notes", "instruction": "What the patient says (bullets)."}
            ],
        },
        {
            "channels": [
                {"channel_id": 1, "participant_role": "PATIENT"},
                {"channel_id": 0, "participant_role": "CLINICIAN"},
            ],
            "encounter_context": "Follow-up: knee pain, week 6.",
            "language_code": "multi",
        },
    ],
)
def test_the_configuration_event_fits_the_model(settings: dict[str, Any]) -> None:
    cfg = AwsScribeConfig(**GOOD, **settings)
    body = json.loads(p.configuration_event(p.CONNECT_HEALTH, cfg))
    assert model.validate(body, EVENTS["configurationEvent"], "configurationEvent") == []


def test_an_empty_configuration_event_is_what_the_model_forbids() -> None:
    """The validator is not a rubber stamp: the device's old default `{}` fails it."""
    assert model.validate({}, EVENTS["configurationEvent"], "c") == [
        "c.postStreamActionSettings: required"
    ]
    flat = {
        "postStreamActionSettings": {
            "outputS3Uri": "s3://b/x",
            "clinicalNoteGenerationSettings": {"noteTemplateSettings": {"templateType": "X"}},
        }
    }
    problems = model.validate(flat, EVENTS["configurationEvent"], "c")
    assert any("templateType: not in the model" in line for line in problems)


def test_the_end_of_session_event_fits_the_model() -> None:
    body = json.loads(p.end_of_session(p.CONNECT_HEALTH))
    assert model.validate(body, EVENTS["sessionControlEvent"], "sessionControlEvent") == []


def test_audio_goes_as_the_models_binary_event() -> None:
    _, audio, _, _ = p.CONNECT_HEALTH.events
    assert audio == "binaryAudioEvent"
    chunk = EVENTS[audio].members["audioChunk"]
    assert chunk.type_name == "blob" and chunk.serialization.get("eventpayload") is True
    assert set(p.CONNECT_HEALTH.events[:3]) <= set(EVENTS)


def test_config_choices_are_the_models_enums() -> None:
    assert set(get_args(NoteTemplate)) == set(model.enum("ManagedNoteTemplate"))
    assert set(CUSTOM_TEMPLATE_BASES) == set(model.enum("CustomTemplateBase"))
    language = get_args(AwsScribeConfig.model_fields["language_code"].annotation)
    assert set(language) == set(model.enum("MedicalScribeLanguageCode"))
    role = get_args(ChannelDefinition.model_fields["participant_role"].annotation)
    assert set(role) == set(model.enum("MedicalScribeParticipantRole"))
    assert set(p.CONNECT_HEALTH.encodings) == set(model.enum("MedicalScribeMediaEncoding"))
