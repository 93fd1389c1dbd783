"""Probes behind `edge-recorder check --probe`: can this device actually do its job?

Each probe is a small function owned by the module that owns the thing it probes (the mic
probe in capture, the broker probe in fleet, each service's probe named by the uplinks
registry); `check` runs them all.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from edge_recorder.config.model import Config
from edge_recorder.support.credentials import credential_path, secret_source

Status = Literal["ok", "warn", "fail", "info"]


@dataclass(frozen=True)
class CheckResult:
    name: str
    status: Status
    detail: str


Probe = Callable[[Config], list[CheckResult]]


def summary(config: Config) -> list[CheckResult]:
    """What the config says, in one line per area (no I/O)."""
    a, e, s = config.audio, config.encoding, config.spool
    # A WAV's header sets its rate and channels (audio.rate/channels/format do not apply):
    # `check --probe` reads and shows them.
    if a.source == "wav":
        what = f"wav {a.wav_path} speed={a.speed} (rate and channels: the file's own)"
    else:
        where = f"alsa {a.device}" if a.source == "alsa" else f"synthetic speed={a.speed}"
        what = f"{where} {a.rate} Hz {a.channels} ch {a.format}"
    rows = [
        CheckResult("device", "info", f"id={config.device.id}"),
        CheckResult("audio", "info", f"{what} -> 16 kHz mono"),
        CheckResult("vad", "info", f"engine={config.vad.engine}"),
        CheckResult("encoding", "info", f"codec={e.codec} chunk={e.chunk_ms} ms"),
        CheckResult(
            "spool",
            "info",
            f"dir={s.dir} cap={s.max_bytes.human_readable()} fsync<={s.fsync_interval_s}s",
        ),
        CheckResult(
            "uplink",
            "info",
            f"service={config.uplink.service} live={config.uplink.live} "
            f"({config.uplink.live_transport})",
        ),
        CheckResult(
            "mqtt",
            "info",
            f"{config.mqtt.host}:{config.mqtt.port} prefix={config.mqtt.topic_prefix}"
            if config.mqtt.host
            else "off (mqtt.host not set)",
        ),
        CheckResult("control", "info", f"socket={config.control.socket}"),
    ]
    rows.extend(secret_references(config))
    return rows


def secret_references(config: Config) -> list[CheckResult]:
    """Where each secret would come from, and whether it is there (never its value)."""
    rows = []
    spool_key = credential_path("spool-key") or config.spool.key_file
    rows.append(
        CheckResult("spool key", "ok", str(spool_key))
        if spool_key.exists()
        else CheckResult("spool key", "info", f"{spool_key} (created on first run)")
    )
    refs: list[tuple[str, Path | None, str]] = []
    if config.auth.mode == "client_credentials":
        refs.append(("auth client secret", config.auth.client_secret_file, "aas-client-secret"))
    else:
        refs.append(("auth token", config.auth.token_file, "aas-token"))
    if config.mqtt.host and config.mqtt.username:
        refs.append(("mqtt password", config.mqtt.password_file, "mqtt-password"))
    for label, file, credential in refs:
        source = secret_source(file, credential)
        if source is not None and source.exists():
            rows.append(CheckResult(label, "ok", str(source)))
        else:
            where = source if source is not None else f"systemd credential '{credential}'"
            rows.append(CheckResult(label, "warn", f"{where} not found"))
    return rows
