"""Emulator settings: one frozen dataclass shared by every part of the emulator.

Defaults mirror what the device config expects of the real service; tests override single
fields (short token lifetimes, another allow list) through the `make_aas_emulator` fixture.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

DEV_CLIENT_ID = "edge-recorder-dev"
DEV_CLIENT_SECRET = "edge-recorder-dev-secret"  # noqa: S105  (a published development value)
DEFAULT_AUDIENCE = "api://ambient-audio-service"
REST_AUDIO_API_VERSION = "2025-07-15"
SESSIONS_API_VERSIONS = ("2",)


@dataclass(frozen=True)
class EmulatorSettings:
    """Everything that shapes the emulator's behaviour; ports 0 = pick a free port."""

    data_dir: Path
    host: str = "127.0.0.1"
    grpc_port: int = 0
    http_port: int = 0
    client_id: str = DEV_CLIENT_ID
    client_secret: str = DEV_CLIENT_SECRET
    # Extra registered clients (id -> secret) that may obtain tokens; whether their tokens are
    # accepted by the audio endpoints is decided by `allowed_client_ids`.
    extra_clients: dict[str, str] = field(default_factory=dict)
    # The service's M2M allow list; None = only `client_id`.
    allowed_client_ids: frozenset[str] | None = None
    token_lifetime_s: float = 3600.0
    audience: str = DEFAULT_AUDIENCE
    # HTTP status for a valid token whose client is not allow-listed: the seed documents both
    # 401 (JSON, "unrecognized application identity") and 403 ("identity not allowlisted").
    not_allowlisted_status: int = 403
    # What RetrieveConfiguration answers.
    max_recording_duration_s: int = 5400
    warning_lead_time_s: int = 300
    max_chunk_bytes: int = 256 * 1024
    recording_locales: tuple[str, ...] = ("en-US", "en-GB", "de-DE", "fr-FR")
    report_locales: tuple[str, ...] = ("en-US", "en-GB", "de-DE", "fr-FR")
    # Whether server WebSocket text frames carry the `Path=...` header block (both occur live).
    ws_header_blocks: bool = True
    # "reference": the generous protocol as reconstructed (answers every open, ack and close).
    # "live": as a public client observed the live service: a RecordAmbient stream gets no
    # answer at all (no RecordingOpens, no acks); REST still works.
    fidelity: Literal["reference", "live"] = "reference"

    @property
    def allow_list(self) -> frozenset[str]:
        if self.allowed_client_ids is None:
            return frozenset({self.client_id})
        return self.allowed_client_ids

    @property
    def clients(self) -> dict[str, str]:
        return {**self.extra_clients, self.client_id: self.client_secret}
