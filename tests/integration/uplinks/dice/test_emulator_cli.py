"""`serve(args)` as the lead's `edge-recorder emulator --service dice` calls it."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import tomllib
from pathlib import Path

import pytest

from devtools.emulators.dice.cli import serve
from edge_recorder.config.loader import load_config
from edge_recorder.support.credentials import read_secret


def mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


async def test_serve_prints_one_line_and_writes_a_working_device_config(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    device = tmp_path / "device.toml"
    args = argparse.Namespace(
        data_dir=tmp_path / "data",
        host="127.0.0.1",
        http_port=0,
        client_id="svc-user",
        client_secret="s3cret-pass",
        token_lifetime_s=120.0,
        device_config=device,
    )
    task = asyncio.create_task(serve(args))
    try:
        async with asyncio.timeout(10):
            while not device.exists():  # noqa: ASYNC110 - a file has no event to await
                await asyncio.sleep(0.02)
        (line,) = [x for x in capsys.readouterr().out.splitlines() if x]
        assert line.startswith("dice-emulator http_port=") and " http_url=http://127.0.0.1:" in line
        tree = tomllib.loads(device.read_text())
        assert tree["uplink"]["service"] == "dice" and tree["dice"]["username"] == "svc-user"
        secret = Path(tree["dice"]["password_file"])
        assert mode(secret) == 0o600 and mode(device) == 0o600
        assert read_secret(secret, "dice-password") == "s3cret-pass"
        (tmp_path / "full.toml").write_text(
            device.read_text() + f'\n[spool]\ndir = "{tmp_path / "spool"}"\n'
        )
        config = load_config(tmp_path / "full.toml")
        from edge_recorder.uplinks.bundle import MemoryState
        from edge_recorder.uplinks.dice.factory import dice_uplinks

        uplinks = dice_uplinks(config, MemoryState())
        try:
            await uplinks.check_auth()  # signs in at the emulator with the written password
        finally:
            await uplinks.aclose()
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    assert (tmp_path / "data" / "tokens.json").exists()
