"""The AAS sections: `[auth]` (how the device gets its bearer token) and `[aas]` (endpoints
and the partner identity the service expects)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal
from uuid import UUID

from pydantic import ConfigDict, Field

from edge_recorder.config.base import Endpoint, HttpUrl, PositiveSeconds, Seconds, Section

# `aas.tls = false` makes every AAS endpoint plain text, so it is allowed for loopback only.
AasHttpUrl = Annotated[str, Endpoint(schemes=("http", "https"), tls_flag="tls")]
AasWsUrl = Annotated[str, Endpoint(schemes=("ws", "wss"), tls_flag="tls")]
AasGrpcTarget = Annotated[str, Endpoint(kind="grpc", tls_flag="tls")]


class AuthConfig(Section):
    """How the device gets its bearer token. The secret itself lives in a file or credential."""

    model_config = ConfigDict(title="auth")

    mode: Literal["client_credentials", "static_token"] = Field(
        "client_credentials", description="OAuth2 client credentials, or a token file (dev)."
    )
    token_url: HttpUrl | None = Field(None, description="OAuth2 token endpoint (https).")
    client_id: str = Field("", description="OAuth2 client id (not a secret).")
    client_secret_file: Path | None = Field(
        None,
        description="File holding the client secret; default: systemd credential "
        "'aas-client-secret'.",
    )
    scope: str | None = Field(None, description="OAuth2 scope to request.")
    partner_scope: str | None = Field(
        None,
        description="OAuth2 scope of a second token for the partner API (PUT "
        "/ambient-sessions), which the live service serves under another scope; unset: the "
        "audio token.",
    )
    delegated_token_file: Path | None = Field(
        None,
        description="A delegated user token a site's sign-in agent keeps fresh in this file: "
        "the live transport uses it (the live WebSocket answers only delegated tokens), REST "
        "keeps the token above; re-read when the file changes.",
    )
    audience: str | None = Field(None, description="Audience/resource to request.")
    token_file: Path | None = Field(None, description="Static bearer token file (static_token).")
    refresh_margin_s: Seconds = Field(60.0, description="Refresh this long before expiry.")
    ca_file: Path | None = Field(None, description="CA bundle for the token endpoint.")


class AasConfig(Section):
    """Ambient audio streaming service endpoints and the partner identity it expects."""

    model_config = ConfigDict(title="aas")

    grpc_target: AasGrpcTarget = Field("", description="gRPC target host:port.")
    rest_url: AasHttpUrl = Field("", description="REST base URL.")
    ws_url: AasWsUrl = Field("", description="WebSocket base URL (wss://host).")
    partner_api_url: AasHttpUrl = Field(
        "",
        description="Partner API base URL for PUT /ambient-sessions (the live service serves "
        "it on another host than the audio); empty: rest_url.",
    )
    tls: bool = Field(True, description="Use TLS (required outside loopback).")
    ca_file: Path | None = Field(None, description="CA bundle for the service.")
    client_cert_file: Path | None = Field(None, description="Client certificate (mTLS).")
    client_key_file: Path | None = Field(None, description="Client private key (mTLS).")
    customer_id: UUID | None = Field(None, description="Customer (organisation) UUID.")
    partner_id: UUID | None = Field(None, description="Partner UUID.")
    product_id: UUID | None = Field(None, description="Product UUID.")
    ehr_instance_id: str | None = Field(None, description="EHR instance id, when several.")
    external_user_id: str | None = Field(
        None, description="Practitioner id sent as external-user-id with S2S tokens."
    )
    user_guid: str | None = Field(None, description="Practitioner GUID (alternative to above).")
    locale: str = Field("en-US", description="Recording and report locale.")
    actions: list[str] = Field(
        default_factory=lambda: ["generate-draft"], description="Processing actions."
    )
    max_duration_s: PositiveSeconds = Field(
        5400.0, description="Fallback maximum encounter length when the service is unreachable."
    )
    warn_before_s: Seconds = Field(300.0, description="Fallback warning lead before the maximum.")
    open_answer_s: PositiveSeconds = Field(
        5.0,
        description="How long a live open waits for recordingOpens before streaming without it "
        "(the live service has been seen never to send one); such a stream starts at byte 0 "
        "and is never resumed at an offset.",
    )
    close_answer_s: PositiveSeconds = Field(
        60.0,
        description="How long a live close waits for its answer (live closes have taken "
        "over 30 s); after that the close has failed and is retried, or the recording goes "
        "through REST when the server never confirmed its open.",
    )
    rest_api_version: str = Field("2025-07-15", description="REST audio api-version.")
    sessions_api_version: str = Field("2", description="Partner API version (ambient-sessions).")
