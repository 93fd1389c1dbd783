"""`edge-recorder emulator --service corti`: serve the Corti emulator until cancelled."""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

from devtools.emulators.corti.app import CortiEmulator
from devtools.emulators.corti.settings import (
    DEV_CLIENT_ID,
    DEV_CLIENT_SECRET,
    CortiEmulatorSettings,
)


def settings_from_args(args: argparse.Namespace) -> CortiEmulatorSettings:
    lifetime = getattr(args, "token_lifetime_s", None)
    return CortiEmulatorSettings(
        data_dir=Path(args.data_dir).resolve(),
        host=args.host,
        http_port=int(args.http_port),
        client_id=args.client_id or DEV_CLIENT_ID,
        client_secret=args.client_secret or DEV_CLIENT_SECRET,
        token_lifetime_s=float(lifetime) if lifetime else 300.0,
    )


async def serve(args: argparse.Namespace) -> int:
    """Listen, print one line with the URLs, write `--device-config` if asked, serve forever."""
    emulator = CortiEmulator(settings_from_args(args))
    try:
        await emulator.start()
    except OSError as exc:
        print(f"corti-emulator: cannot listen: {exc}", flush=True)
        return 1
    try:
        config_note = ""
        if getattr(args, "device_config", None) is not None:
            from devtools.emulators.corti.device_config import write_device_config

            secret_file = write_device_config(emulator, Path(args.device_config))
            config_note = f" device_config={secret_file.parent / Path(args.device_config).name}"
        print(
            f"corti-emulator http_port={emulator.http_port} http_url={emulator.http_url} "
            f"api_url={emulator.api_url} auth_url={emulator.auth_url} ws_url={emulator.ws_url} "
            f"tenant={emulator.settings.tenant} client_id={emulator.settings.client_id}"
            f"{config_note}",
            flush=True,
        )
        await asyncio.Event().wait()
    finally:
        await emulator.stop()
    return 0
