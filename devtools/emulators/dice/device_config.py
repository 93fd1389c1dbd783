"""`--device-config PATH`: the [uplink] and [dice] sections that point a device here.

The password goes into a file beside the config (mode 0600) named by `dice.password_file`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import tomli_w

from devtools.emulators.dice.server import DiceEmulator

HEADER = (
    "# Written by `edge-recorder emulator --service dice --device-config`: points a device at\n"
    "# the local Dice STREAM emulator. Add an [audio] section (and others) and run\n"
    "# `edge-recorder run --config THIS_FILE`. TLS is off: the emulator is on loopback only.\n"
)


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    path.chmod(0o600)


def device_sections(emulator: DiceEmulator, password_file: Path) -> dict[str, Any]:
    return {
        "uplink": {"service": "dice", "live": True},
        "encoding": {"codec": "pcm16"},
        "dice": {
            "url": emulator.ws_url,
            "token_url": emulator.token_url,
            "username": emulator.settings.username,
            "password_file": str(password_file),
            "stream_limit_s": float(emulator.settings.stream_limit_s),
            "limit_warning_s": float(
                min(emulator.settings.countdown_s, emulator.settings.stream_limit_s)
            ),
        },
    }


def write_device_config(emulator: DiceEmulator, path: Path) -> Path:
    """Write the TOML and the password file beside it; returns the password file's path."""
    path = path.resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    password_file = path.with_name(path.stem + ".dice-password")
    _write_private(password_file, emulator.settings.password + "\n")
    _write_private(path, HEADER + tomli_w.dumps(device_sections(emulator, password_file)))
    return password_file
