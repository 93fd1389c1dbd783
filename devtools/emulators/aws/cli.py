"""`edge-recorder emulator --service aws`: serve until cancelled, print one line with ports.

The device's credentials come from the standard AWS sources, so `--device-config` writes a
shared credentials file (mode 0600) beside the TOML; run the device with
`AWS_SHARED_CREDENTIALS_FILE=<that file>`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
from pathlib import Path
from typing import Any

import tomli_w

from devtools.emulators.aws.app import AwsEmulator, AwsEmulatorSettings

TEST_DOMAIN = "dom-emulator0000000001"
TEST_OUTPUT = "s3://edge-recorder-emulator/notes"  # where Connect Health would write the note
TEST_SUBSCRIPTION = "sub-EMULATOR0000000000001"

HEADER = (
    "# Written by `edge-recorder emulator --service aws --device-config`: points a device at the\n"
    "# local AWS scribe streaming emulator (HTTP/2 over TLS with its own CA, on loopback).\n"
    "# Credentials are NOT in this file: run the device with\n"
    "#   AWS_SHARED_CREDENTIALS_FILE={creds} edge-recorder run --config THIS_FILE\n"
)


def device_sections(emu: AwsEmulator, service: str) -> dict[str, Any]:
    return {
        "uplink": {"service": service, "live": True},
        "encoding": {"codec": "pcm16"},
        "aws": {
            "region": "us-east-1",
            "endpoint_url": emu.endpoint_url,
            "ca_file": str(emu.ca_file),
            "domain_id": TEST_DOMAIN,
            "subscription_id": TEST_SUBSCRIPTION,
            "output_s3_uri": TEST_OUTPUT,
            "language_code": "en-US",
        },
    }


def write_device_config(emu: AwsEmulator, path: Path, service: str) -> Path:
    """The TOML at `path` and `aws-credentials` (0600) beside it; returns the credentials file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    creds = path.parent / "aws-credentials"
    fd = os.open(creds, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(
            "[default]\n"
            f"aws_access_key_id = {emu.creds.access_key_id}\n"
            f"aws_secret_access_key = {emu.creds.secret_access_key}\n"
        )
    text = HEADER.format(creds=creds) + tomli_w.dumps(device_sections(emu, service))
    path.write_text(text)
    return creds


async def serve(args: argparse.Namespace) -> int:
    data_dir = Path(args.data_dir)
    await asyncio.to_thread(data_dir.mkdir, parents=True, exist_ok=True)
    emu = AwsEmulator(
        AwsEmulatorSettings(
            data_dir=data_dir,
            access_key_id=args.client_id or "AKIDEMULATOR",
            secret_access_key=args.client_secret or "emulator-secret",
            host=args.host,
            http_port=args.http_port,
            http2_port=int(getattr(args, "http2_port", 0) or 0),
        )
    )
    try:
        await emu.start()
    except OSError as exc:
        print(f"edge-recorder emulator: cannot listen: {exc}", flush=True)
        return 1
    try:
        if args.device_config:
            service = getattr(args, "aws_service", None) or "aws-healthscribe"
            write_device_config(emu, Path(args.device_config), service)
        print(
            f"aws-emulator http_port={emu.http_port} http_url={emu.http_url} "
            f"http2_port={emu.http2_port} endpoint_url={emu.endpoint_url}",
            flush=True,
        )
        await asyncio.Event().wait()
    finally:
        await emu.stop()
    return 0
