"""`edge-recorder emulator --service dice`: `serve(args)` runs the Dice emulator until cancelled.

Reads `args.data_dir, host, http_port, client_id (the sign-in username), client_secret (its
password), token_lifetime_s, device_config`; optional `stream_limit_s`, `countdown_s`.
"""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

from devtools.emulators.dice.server import DiceEmulator
from devtools.emulators.dice.settings import DEV_PASSWORD, DEV_USERNAME, DiceEmulatorSettings


def settings_from_args(args: argparse.Namespace) -> DiceEmulatorSettings:
    extra = {
        key: float(getattr(args, key))
        for key in ("stream_limit_s", "countdown_s", "token_lifetime_s")
        if getattr(args, key, None) is not None
    }
    return DiceEmulatorSettings(
        data_dir=Path(args.data_dir).resolve(),
        host=args.host,
        http_port=args.http_port,
        username=args.client_id or DEV_USERNAME,
        password=args.client_secret or DEV_PASSWORD,
        **extra,
    )


async def serve(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    emulator = DiceEmulator(settings)
    try:
        await emulator.start()
    except OSError as exc:
        print(f"edge-recorder emulator: cannot listen: {exc}", flush=True)
        return 1
    try:
        print(
            f"dice-emulator http_port={emulator.http_port} http_url={emulator.http_url} "
            f"ws_url={emulator.ws_url} token_url={emulator.token_url}",
            flush=True,
        )
        if args.device_config is not None:
            from devtools.emulators.dice.device_config import write_device_config

            write_device_config(emulator, Path(args.device_config))
        await asyncio.Event().wait()  # until cancelled
    finally:
        await emulator.stop()
    return 0
