"""`--device-config PATH`: the [uplink], [auth] and [aas] sections that point a device here.

The client secret goes into a file beside the config (mode 0600) referenced by
`auth.client_secret_file`, never inline. The tenant ids are fixed per data dir so a device
config written yesterday still matches the sessions the emulator keeps.
"""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path
from typing import Any

import tomli_w

from devtools.emulators.aas.app import Emulator

HEADER = (
    "# Written by `edge-recorder emulator --device-config`: points a device at the local\n"
    "# ambient audio service emulator. Add an [audio] section (and others) and run\n"
    "# `edge-recorder run --config THIS_FILE`. TLS is off: the emulator is on loopback only.\n"
)


def tenant_ids(data_dir: Path) -> dict[str, str]:
    """customer/partner/product UUIDs for this data dir, created once."""
    path = data_dir / "tenant.json"
    if path.exists():
        loaded = json.loads(path.read_text())
        return {k: str(v) for k, v in loaded.items()}
    ids = {key: str(uuid.uuid4()) for key in ("customer_id", "partner_id", "product_id")}
    path.write_text(json.dumps(ids, indent=2))
    return ids


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)


def device_sections(emulator: Emulator, secret_file: Path) -> dict[str, Any]:
    settings = emulator.settings
    return {
        "uplink": {"service": "aas", "live": True, "live_transport": "grpc"},
        "auth": {
            "mode": "client_credentials",
            "token_url": emulator.token_url,
            "client_id": settings.client_id,
            "client_secret_file": str(secret_file),
            "audience": settings.audience,
        },
        "aas": {
            "grpc_target": emulator.grpc_target,
            "rest_url": emulator.http_url,
            "ws_url": emulator.ws_url,
            "tls": False,
            **tenant_ids(settings.data_dir),
            "external_user_id": "emulator-practitioner",
            "max_duration_s": float(settings.max_recording_duration_s),
            "warn_before_s": float(settings.warning_lead_time_s),
        },
    }


def write_device_config(emulator: Emulator, path: Path) -> Path:
    """Write the TOML and the secret file beside it; returns the secret file's path."""
    path = path.resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    secret_file = path.with_name(path.stem + ".client-secret")
    _write_private(secret_file, emulator.settings.client_secret + "\n")
    _write_private(path, HEADER + tomli_w.dumps(device_sections(emulator, secret_file)))
    return secret_file
