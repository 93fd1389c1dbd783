"""`serve(args)` (what `edge-recorder emulator --service corti` runs): one line with the URLs,
a `--device-config` a real device config loader accepts, and the `check --probe` rows."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import stat
import time
from pathlib import Path

import pytest

from devtools.emulators.corti.cli import serve
from edge_recorder.config.loader import load_config
from edge_recorder.uplinks.corti.probe import probe_corti_async


async def test_serve_prints_one_line_and_writes_a_device_config(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    device = tmp_path / "etc" / "device.toml"
    args = argparse.Namespace(
        data_dir=tmp_path / "data", host="127.0.0.1", http_port=0, client_id=None,
        client_secret="s3cret-for-test", token_lifetime_s=60.0, device_config=device,
    )  # fmt: skip
    task = asyncio.create_task(serve(args))
    try:
        out, deadline = "", time.monotonic() + 10
        while "corti-emulator" not in out:
            assert time.monotonic() < deadline and not task.done(), out
            await asyncio.sleep(0.02)
            out += capsys.readouterr().out
        (line,) = out.strip().splitlines()
        fields = dict(item.split("=", 1) for item in line.split()[1:])
        assert fields["http_url"] == f"http://127.0.0.1:{fields['http_port']}"
        assert "s3cret" not in line
        config = load_config(device)
        assert config.uplink.service == "corti"
        assert config.corti.api_url == fields["api_url"]
        secret = config.corti.client_secret_file
        assert secret is not None and secret.read_text().strip() == "s3cret-for-test"
        assert stat.S_IMODE(secret.stat().st_mode) == 0o600
        rows = await probe_corti_async(config)
        assert [(r.name, r.status) for r in rows] == [("corti-token", "ok"), ("corti-api", "ok")]
        config.corti.template_keys = ["corti-soap", "no-such-template"]
        rows = await probe_corti_async(config)
        assert rows[-1].status == "warn" and "no-such-template" in rows[-1].detail
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
