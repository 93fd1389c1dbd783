"""`--device-config PATH`: the [uplink] and [corti] sections that point a device at the emulator.

The client secret goes into a file beside the config (mode 0600) named by
`corti.client_secret_file`, never inline. TLS is off: the emulator listens on loopback only.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import tomli_w

from devtools.emulators.corti.app import CortiEmulator

HEADER = (
    "# Written by `edge-recorder emulator --service corti --device-config`: points a device at\n"
    "# the local Corti emulator. Add an [audio] section (and others) and run\n"
    "# `edge-recorder run --config THIS_FILE`.\n"
)


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    path.chmod(0o600)


def device_sections(emulator: CortiEmulator, secret_file: Path) -> dict[str, Any]:
    settings = emulator.settings
    return {
        "uplink": {"service": "corti", "live": False},
        "encoding": {"codec": "pcm16"},
        "corti": {
            "api_url": emulator.api_url,
            "auth_url": emulator.auth_url,
            "ws_url": emulator.ws_url,
            "tenant": settings.tenant,
            "client_id": settings.client_id,
            "client_secret_file": str(secret_file),
            "encounter_type": "consultation",
            "transcribe": True,
            "template_keys": ["corti-soap"],
        },
    }


def write_device_config(emulator: CortiEmulator, path: Path) -> Path:
    """Write the TOML and the secret file beside it; returns the secret file's path."""
    path = path.resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    secret_file = path.with_name(path.stem + ".corti-client-secret")
    _write_private(secret_file, emulator.settings.client_secret + "\n")
    _write_private(path, HEADER + tomli_w.dumps(device_sections(emulator, secret_file)))
    return secret_file
