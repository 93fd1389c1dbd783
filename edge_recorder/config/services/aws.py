"""`[aws]`: AWS medical scribe streaming (Connect Health / HealthScribe) settings.

Credentials are never configured here: they come from the standard AWS sources (environment,
shared config/credentials files with `profile`, container or instance role) via botocore.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from edge_recorder.config.base import Endpoint, Section

DOMAIN_RE = re.compile(r"(hai-|dom-)[a-z0-9]+")
SUBSCRIPTION_RE = re.compile(r"sub-[a-zA-Z0-9]{21}")
REGION_RE = re.compile(r"[a-z]{2}(-[a-z]+)+-\d")
# TLS even on loopback: HTTP/2 is negotiated with ALPN.
AwsEndpointUrl = Annotated[
    str,
    Endpoint(schemes=("https",), note="HTTP/2 over TLS; use ca_file for a local test CA"),
]


class ChannelDefinition(BaseModel):
    """Who speaks on one audio channel (sent in the configurationEvent)."""

    model_config = ConfigDict(extra="forbid")

    channel_id: int = Field(0, ge=0, le=1, description="Audio channel number (0 or 1).")
    participant_role: Literal["CLINICIAN", "PATIENT"] = Field(
        "CLINICIAN", description="Speaker on this channel."
    )


# The clinical note templates the services offer (Connect Health's `ManagedNoteTemplate` and
# `CustomTemplateBase` enums; tests/unit/uplinks/aws checks them against AWS's published model).
NoteTemplate = Literal[
    "HISTORY_AND_PHYSICAL", "GIRPP", "DAP", "SIRP", "BIRP", "BEHAVIORAL_SOAP", "PHYSICAL_SOAP"
]
CUSTOM_TEMPLATE_BASES = ("HISTORY_AND_PHYSICAL", "GIRPP", "DAP", "SIRP", "BIRP", "BEHAVIORAL_SOAP")


class TemplateSection(BaseModel):
    """One section of a custom note template (Connect Health `templateInstructions`)."""

    model_config = ConfigDict(extra="forbid")

    header: str = Field(
        ..., pattern=r"^[a-zA-Z0-9_]+$", description="Section header (letters, digits, _)."
    )
    instruction: str = Field(..., min_length=1, description="What the section should hold.")


class AwsScribeConfig(Section):
    """Region, endpoint and session headers (credentials come from the standard AWS sources)."""

    model_config = ConfigDict(title="aws")

    region: str = Field("us-east-1", description="AWS region of the streaming endpoint.")
    endpoint_url: AwsEndpointUrl | None = Field(
        None,
        description="Override the service endpoint (https://host:port; the emulator). "
        "TLS is always used: HTTP/2 is negotiated with ALPN.",
    )
    ca_file: Path | None = Field(
        None, description="CA bundle for endpoint_url (the emulator's test CA)."
    )
    profile: str | None = Field(
        None, description="AWS shared-config profile name (else the default chain)."
    )
    domain_id: str | None = Field(
        None, description="Connect Health domain id, (hai-|dom-)[a-z0-9]+, 20-25 chars."
    )
    subscription_id: str | None = Field(
        None, description="Connect Health subscription id, sub- and 21 letters/digits."
    )
    language_code: Literal["en-US", "multi"] = Field(
        "en-US",
        description="Language of the audio (Connect Health also takes 'multi': several "
        "languages in one session).",
    )
    channels: list[ChannelDefinition] = Field(
        default_factory=list,
        description="Channel definitions for the configurationEvent (empty: omitted).",
    )
    note_template: NoteTemplate = Field(
        "HISTORY_AND_PHYSICAL",
        description="Clinical note template the service writes (Connect Health "
        "managedTemplate.templateType; HealthScribe NoteTemplate).",
    )
    note_template_sections: list[TemplateSection] = Field(
        default_factory=list,
        max_length=20,
        description="Connect Health: sections of a custom template built on note_template "
        "(1-20; empty: the managed template as it is).",
    )
    medical_coding: bool | None = Field(
        None,
        description="Connect Health: ask for medical code generation after the stream "
        "(unset: the service's default).",
    )
    output_s3_uri: str | None = Field(
        None,
        description="Where the service writes its output: s3://bucket/prefix "
        "(Connect Health outputS3Uri; HealthScribe uses the bucket name).",
    )
    resource_access_role_arn: str | None = Field(
        None, description="HealthScribe only: IAM role the service assumes to write output."
    )
    encounter_context: str | None = Field(
        None,
        description="Unstructured encounter context sent in the configurationEvent, only "
        "when set (never logged).",
    )
    resume_window_s: float = Field(
        5 * 3600.0,
        gt=0,
        le=5 * 3600.0,
        description="Resume a broken stream in the same session within this time "
        "(HealthScribe allows 5 h); later, the recording restarts in a new session.",
    )

    @field_validator("region")
    @classmethod
    def _region(cls, value: str) -> str:
        if not REGION_RE.fullmatch(value):
            raise ValueError(f"aws.region {value!r} is not a region name like us-east-1")
        return value

    @field_validator("domain_id")
    @classmethod
    def _domain(cls, value: str | None) -> str | None:
        if value is not None and not (DOMAIN_RE.fullmatch(value) and 20 <= len(value) <= 25):
            raise ValueError(
                "aws.domain_id must match (hai-|dom-)[a-z0-9]+ and be 20-25 characters"
            )
        return value

    @field_validator("subscription_id")
    @classmethod
    def _subscription(cls, value: str | None) -> str | None:
        if value is not None and not SUBSCRIPTION_RE.fullmatch(value):
            raise ValueError("aws.subscription_id must be sub- followed by 21 letters/digits")
        return value

    @field_validator("output_s3_uri")
    @classmethod
    def _s3(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(
            r"s3://[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9](/.*)?", value
        ):
            raise ValueError("aws.output_s3_uri must look like s3://bucket/prefix")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> AwsScribeConfig:
        ids = [c.channel_id for c in self.channels]
        if self.channels and sorted(ids) != [0, 1]:
            raise ValueError(
                "aws.channels: define both channels (channel_id 0 and 1) or none: the services "
                "take exactly two channel definitions"
            )
        if self.note_template_sections and self.note_template not in CUSTOM_TEMPLATE_BASES:
            raise ValueError(
                f"aws.note_template = {self.note_template!r} cannot carry custom sections "
                f"(custom templates build on {', '.join(CUSTOM_TEMPLATE_BASES)})"
            )
        return self
