"""The dashboard's own config file (`/etc/edge-recorder-fleet/fleet.toml`), apart from the device's.

The dashboard runs on a server beside the broker, not on a device, so it has its own small
model: broker, HTTP listener, logins, history and limits. Unknown keys are errors (a typo must
not silently fall back to a default), and `exposure_problems` is the one rule that decides
whether the listener may leave loopback: only with TLS and a login.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from edge_recorder.config.base import is_loopback_host
from edge_recorder.config.errors import ConfigError, read_toml

DEFAULT_PATH = Path("/etc/edge-recorder-fleet/fleet.toml")
Role = Literal["viewer", "operator"]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class MqttSettings(_Section):
    """The broker the devices publish to."""

    host: str = "127.0.0.1"
    port: int | None = Field(default=None, ge=1, le=65535)  # None: 1883, or 8883 with TLS
    topic_prefix: str = Field(default="edge-recorder", pattern=r"^[^#+/][^#+]*[^#+/]$|^[^#+/]$")
    tls: bool = False
    ca_file: Path | None = None
    username: str | None = None
    password_file: Path | None = None
    client_cert_file: Path | None = None
    client_key_file: Path | None = None

    @property
    def effective_port(self) -> int:
        return self.port or (8883 if self.tls else 1883)


class HttpSettings(_Section):
    """Where the dashboard listens; a certificate and key make it HTTPS."""

    host: str = "127.0.0.1"
    port: int = Field(default=8470, ge=0, le=65535)  # 0: any free port (tests)
    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None

    @property
    def tls(self) -> bool:
        return self.tls_cert_file is not None and self.tls_key_file is not None


class AuthSettings(_Section):
    """Who may look (viewer) and who may send commands (operator)."""

    users_file: Path | None = None
    proxy_user_header: str | None = None
    proxy_role_header: str | None = None
    trusted_proxies: list[str] = Field(default_factory=lambda: ["127.0.0.1", "::1"])
    session_hours: float = Field(default=12, gt=0, le=24 * 30)
    metrics_token_file: Path | None = None


class HistorySettings(_Section):
    """The SQLite history behind the device charts."""

    path: Path = Path("/var/lib/edge-recorder-fleet/history.sqlite3")
    retention_days: float = Field(default=7, gt=0)
    sample_s: float = Field(default=60, gt=0)
    flush_s: float = Field(default=5, gt=0)


class LimitsSettings(_Section):
    """Bounds that keep one broken or hostile device from hurting the dashboard."""

    max_payload_bytes: int = Field(default=65536, ge=256)
    max_devices: int = Field(default=5000, ge=1)
    device_rate_per_s: float = Field(default=2.0, gt=0)
    device_burst: int = Field(default=30, ge=1)
    command_timeout_s: float = Field(default=10.0, gt=0, le=120)
    max_stream_clients: int = Field(default=200, ge=1)


class DashboardConfig(_Section):
    """The whole fleet.toml."""

    mqtt: MqttSettings = Field(default_factory=MqttSettings)
    http: HttpSettings = Field(default_factory=HttpSettings)
    auth: AuthSettings = Field(default_factory=AuthSettings)
    history: HistorySettings = Field(default_factory=HistorySettings)
    limits: LimitsSettings = Field(default_factory=LimitsSettings)
    audit_log: Path = Path("/var/lib/edge-recorder-fleet/audit.log")


def _lines(exc: ValidationError) -> list[str]:
    """`key.path: reason` per error, never the offending value (it may be a secret path)."""
    return [
        f"{'.'.join(str(part) for part in error['loc']) or '(top)'}: {error['msg']}"
        for error in exc.errors(include_url=False)
    ]


def load_dashboard_config(
    path: Path | None, overrides: Mapping[str, object] | None = None
) -> DashboardConfig:
    """fleet.toml validated, or ConfigError with one line per problem; None: the defaults.

    `overrides` (command-line flags) replace single keys: `{"http": {"port": 1}}` changes one
    key of a section, `{"audit_log": "..."}` a top-level key.
    """
    raw = read_toml(path) if path is not None else {}
    for key, value in (overrides or {}).items():
        current = raw.get(key)
        if isinstance(value, Mapping) and isinstance(current, dict):
            raw[key] = {**current, **value}
        else:
            raw[key] = dict(value) if isinstance(value, Mapping) else value
    try:
        return DashboardConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(_lines(exc), str(path) if path else "(defaults)") from None


def login_enabled(cfg: DashboardConfig) -> bool:
    return cfg.auth.users_file is not None or cfg.auth.proxy_user_header is not None


def listens_on_loopback(cfg: DashboardConfig) -> bool:
    return is_loopback_host(cfg.http.host) if cfg.http.host else False


def exposure_problems(cfg: DashboardConfig) -> list[str]:
    """Why this config may not listen where it says (empty: it may).

    Beyond loopback the dashboard needs HTTPS (certificate and key) and a login (users file
    or a trusted proxy header): device states and the command buttons are not for everyone
    on the network, and a session cookie must not cross it in clear text.
    """
    problems: list[str] = []
    http = cfg.http
    if (http.tls_cert_file is None) != (http.tls_key_file is None):
        problems.append("http.tls_cert_file and http.tls_key_file must be set together.")
    if listens_on_loopback(cfg):
        return problems
    where = f"{http.host or '*'}:{http.port}"
    if http.tls_cert_file is None:
        problems.append(f"listening on {where} (beyond loopback) needs http.tls_cert_file.")
    if http.tls_key_file is None:
        problems.append(f"listening on {where} (beyond loopback) needs http.tls_key_file.")
    if not login_enabled(cfg):
        problems.append(
            f"listening on {where} (beyond loopback) needs a login: "
            "auth.users_file or auth.proxy_user_header."
        )
    return problems
