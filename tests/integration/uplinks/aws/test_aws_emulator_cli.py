"""`serve(args)` prints its ports; `--device-config` writes a config the device accepts and a
0600 shared-credentials file a client can use through the standard AWS variable."""

from __future__ import annotations

import argparse
import asyncio
import re
import stat
from pathlib import Path

import aiohttp
import pytest

from devtools.emulators.aws.cli import serve
from edge_recorder.config.loader import load_config
from edge_recorder.uplinks.aws.factory import aws_uplinks
from edge_recorder.uplinks.base import DataFormat, RecordingRef, SessionIdentity
from tests.support.aws_emulator import MemoryState


async def test_serve_prints_ports_and_writes_a_working_device_config(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    device = tmp_path / "device" / "device.toml"
    device.parent.mkdir()
    args = argparse.Namespace(
        data_dir=str(tmp_path / "data"),
        host="127.0.0.1",
        http_port=0,
        client_id="AKIDCLI",
        client_secret="cli-secret",
        token_lifetime_s=3600,
        device_config=str(device),
    )
    task = asyncio.create_task(serve(args))
    try:
        line = ""
        async with asyncio.timeout(10):
            while "aws-emulator" not in line:
                await asyncio.sleep(0.02)  # polling captured stdout, with a deadline
                line += capsys.readouterr().out
        found = re.search(r"http_port=(\d+) http_url=(\S+) http2_port=(\d+)", line)
        assert found is not None, line
        async with aiohttp.ClientSession() as s, s.get(found[2] + "/_emulator/info") as r:
            assert (await r.json())["http2_port"] == int(found[3])

        creds = device.parent / "aws-credentials"
        assert stat.S_IMODE(creds.stat().st_mode) == 0o600
        assert "cli-secret" not in device.read_text()
        for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE"):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(creds))
        monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
        monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
        config = load_config(device, environ={})
        uplinks = aws_uplinks(config, MemoryState())
        assert uplinks.service == "aws-healthscribe"
        ident = SessionIdentity.local("enc-cli")
        stream = await uplinks.live.open_recording(ident, RecordingRef.new(1), DataFormat())
        await stream.send(0, b"\x00\x01" * 16000)
        assert await stream.close() == 32000
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
