"""Settings of the Corti emulator (one frozen dataclass; tests override single fields)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

DEV_TENANT = "edge-dev"
DEV_CLIENT_ID = "edge-recorder-dev"
DEV_CLIENT_SECRET = "edge-recorder-dev-secret"  # noqa: S105  (a published development value)

TEMPLATES: dict[str, tuple[str, tuple[tuple[str, str], ...]]] = {
    # templateKey -> (name, ((section key, section name), ...)); [inferred] shapes
    "corti-soap": (
        "SOAP note",
        (
            ("subjective", "Subjective"),
            ("objective", "Objective"),
            ("assessment", "Assessment"),
            ("plan", "Plan"),
        ),
    ),
    "corti-brief-clinical-note": (
        "Brief clinical note",
        (("summary", "Summary"), ("plan", "Plan")),
    ),
}


@dataclass(frozen=True)
class CortiEmulatorSettings:
    data_dir: Path
    host: str = "127.0.0.1"
    http_port: int = 0
    tenant: str = DEV_TENANT
    client_id: str = DEV_CLIENT_ID
    client_secret: str = DEV_CLIENT_SECRET
    token_lifetime_s: float = 300.0  # [doc] Corti tokens are short-lived (~5 min)
    max_upload_bytes: int = 150_000_000  # [doc] 150 MB
    max_upload_s: float = 7200.0  # [doc] 120 min
    # Transcripts: answer 202 and make the client poll (as the service does past ~25 s).
    transcripts_async: bool = False
    async_polls: int = 2  # status answers "processing" this many times before "completed"
    config_timeout_s: float = 10.0  # [doc] /streams: the config message must come within 10 s
