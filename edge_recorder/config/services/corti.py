"""`[corti]`: where the Corti asynchronous workflow lives and what to ask of it."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import ByteSize, ConfigDict, Field, model_validator

from edge_recorder.config.base import HttpUrl, PositiveSeconds, Section, WsUrl

EncounterType = Literal[
    "first_consultation", "consultation", "emergency", "inpatient", "outpatient"
]

MAX_UPLOAD_BYTES = 150_000_000  # [doc] 150 MB per recording (decimal MB: the smaller reading)
MAX_UPLOAD_S = 7200.0  # [doc, research] 120 min per recording (the .NET SDK comment says 60)


class CortiConfig(Section):
    """Corti tenant, endpoints and workflow options (secrets live in files/credentials)."""

    model_config = ConfigDict(title="corti")

    region: Literal["eu", "us"] = Field(
        "eu", description="Corti environment; gives the default api/auth/ws hosts."
    )
    api_url: HttpUrl = Field(
        "", description="REST base URL override (default https://api.<region>.corti.app/v2)."
    )
    auth_url: HttpUrl = Field(
        "", description="Auth realms URL override (default https://auth.<region>.corti.app/realms)."
    )
    ws_url: WsUrl = Field(
        "",
        description="WebSocket base override (default wss://api.<region>.corti.app/audio-bridge/v2).",
    )
    ca_file: Path | None = Field(None, description="CA bundle for the Corti hosts (private CA).")
    tenant: str = Field("", description="Tenant name (sent as Tenant-Name; names the auth realm).")
    client_id: str = Field("", description="OAuth2 client id (not a secret).")
    client_secret_file: Path | None = Field(
        None,
        description="File holding the client secret; default: systemd credential "
        "'corti-client-secret'.",
    )
    scope: str | None = Field(None, description="OAuth2 scope to request (optional).")
    encounter_type: EncounterType = Field(
        "consultation", description="encounter.type of the interaction created per encounter."
    )
    primary_language: str = Field("en", description="Spoken language for transcripts.")
    transcribe: bool = Field(
        True, description="Request a transcript of every recording once the encounter is uploaded."
    )
    template_keys: list[str] = Field(
        default_factory=list,
        description="One document per templateKey (needs transcribe); empty = no documents.",
    )
    document_output_language: str = Field("en", description="outputLanguage of documents.")
    live_stream: bool = Field(
        False,
        description="Also stream the recording being captured to the interaction's /streams "
        "in real time (live transcripts and facts); best effort, every recording is still "
        "uploaded once closed.",
    )
    upload_max_bytes: ByteSize = Field(
        ByteSize(MAX_UPLOAD_BYTES),
        ge=4096,
        le=MAX_UPLOAD_BYTES,
        description="Largest upload (WAV header included); longer recordings are split.",
    )
    upload_max_s: PositiveSeconds = Field(
        MAX_UPLOAD_S, le=MAX_UPLOAD_S, description="Longest upload in seconds; split beyond."
    )
    poll_interval_s: PositiveSeconds = Field(
        2.0, le=60, description="Transcript status polling interval (asynchronous transcripts)."
    )
    processing_timeout_s: PositiveSeconds = Field(
        900.0, description="Give up waiting for one transcript after this long (retried later)."
    )
    refresh_margin_s: float = Field(
        60.0, ge=0, description="Refresh the access token this long before it expires."
    )

    @model_validator(mode="after")
    def _consistent(self) -> CortiConfig:
        if self.template_keys and not self.transcribe:
            raise ValueError(
                "corti.template_keys need corti.transcribe = true (documents are "
                "generated from the transcript)"
            )
        return self

    @property
    def api_base(self) -> str:
        return (self.api_url or f"https://api.{self.region}.corti.app/v2").rstrip("/")

    @property
    def auth_base(self) -> str:
        return (self.auth_url or f"https://auth.{self.region}.corti.app/realms").rstrip("/")

    @property
    def ws_base(self) -> str:
        return (self.ws_url or f"wss://api.{self.region}.corti.app/audio-bridge/v2").rstrip("/")

    @property
    def token_url(self) -> str:
        return f"{self.auth_base}/{self.tenant}/protocol/openid-connect/token"
