"""`edge-recorder emulator` as a separate process, and the device config it writes."""

from __future__ import annotations

import base64
import json
import os
import re
import selectors
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from devtools.emulators.aas.device_config import device_sections
from devtools.emulators.aas.settings import DEV_CLIENT_ID, DEV_CLIENT_SECRET
from edge_recorder.config.loader import load_config
from edge_recorder.support.credentials import read_secret


def _read_line(proc: subprocess.Popen[str], deadline: float) -> str:
    selector = selectors.DefaultSelector()
    selector.register(proc.stdout, selectors.EVENT_READ)
    while time.monotonic() < deadline:
        if selector.select(timeout=deadline - time.monotonic()):
            return proc.stdout.readline()
    raise AssertionError("emulator printed nothing before the deadline")


def _token(token_url: str, client_id: str, secret: str) -> dict:
    auth = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    request = urllib.request.Request(
        token_url,
        data=b"grant_type=client_credentials",
        headers={
            "Authorization": f"Basic {auth}",
            "Content-Type": "application/x-www-form-urlencoded",
        },
    )
    with urllib.request.urlopen(request, timeout=10) as resp:
        return json.load(resp)


def test_emulator_process_prints_ports_serves_and_stops_on_sigterm(tmp_path: Path) -> None:
    device = tmp_path / "device" / "config.toml"
    env = {k: v for k, v in os.environ.items() if not k.startswith("EDGE_RECORDER")}
    proc = subprocess.Popen(
        [
            sys.executable, "-m", "edge_recorder", "emulator",
            "--data-dir", str(tmp_path / "data"),
            "--grpc-port", "0", "--http-port", "0",
            "--client-id", "bench-device", "--client-secret", "bench-secret",
            "--token-lifetime-s", "120",
            "--device-config", str(device),
            "--log-level", "WARNING",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        first = _read_line(proc, deadline)
        ports = dict(re.findall(r"(\w+)=(\S+)", first))
        assert int(ports["grpc_port"]) > 0 and int(ports["http_port"]) > 0
        assert ports["grpc_target"] == f"127.0.0.1:{ports['grpc_port']}"
        creds = _read_line(proc, deadline)
        assert "client_id=bench-device" in creds and "client_secret=bench-secret" in creds
        while "device config:" not in (line := _read_line(proc, deadline)):
            assert line, "emulator exited early"
        body = _token(ports["token_url"], "bench-device", "bench-secret")
        assert body["expires_in"] == 120

        config = load_config(device, environ={})
        assert config.auth.token_url == ports["token_url"]
        assert config.auth.client_id == "bench-device"
        assert config.aas.grpc_target == ports["grpc_target"]
        assert config.aas.rest_url == ports["http_url"]
        assert config.aas.ws_url == ports["ws_url"]
        assert config.aas.tls is False
        assert config.aas.customer_id is not None and config.aas.external_user_id
        assert read_secret(config.auth.client_secret_file, "aas-client-secret") == "bench-secret"
        assert config.auth.client_secret_file.stat().st_mode & 0o777 == 0o600
        assert "bench-secret" not in device.read_text()
        # the device's own view works: its credentials get a token from its token_url
        assert _token(config.auth.token_url, config.auth.client_id, "bench-secret")["access_token"]
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=30)
    assert code == 0, proc.stderr.read()


def test_device_sections_validate_with_an_audio_section(tmp_path: Path) -> None:
    """The written sections plus an [audio] section form a complete valid device config."""
    import tomli_w

    from devtools.emulators.aas.app import Emulator
    from devtools.emulators.aas.settings import EmulatorSettings

    emulator = Emulator(EmulatorSettings(data_dir=tmp_path / "data", grpc_port=1, http_port=2))
    emulator.grpc_port, emulator.http_port = 50051, 8080
    secret = tmp_path / "secret"
    secret.write_text(DEV_CLIENT_SECRET)
    sections = device_sections(emulator, secret)
    sections["audio"] = {"source": "synthetic"}
    path = tmp_path / "full.toml"
    path.write_text(tomli_w.dumps(sections))
    config = load_config(path, environ={})
    assert config.auth.client_id == DEV_CLIENT_ID
    assert config.aas.grpc_target == "127.0.0.1:50051"
    # tenant ids are stable for a data dir
    assert device_sections(emulator, secret)["aas"]["customer_id"] == str(config.aas.customer_id)


PROBE_ROWS = {
    "corti": ("corti-token", "corti-api"),
    "dice": ("dice-credentials", "dice-endpoint"),
    "aws": ("aws-healthscribe-credentials", "aws-healthscribe-endpoint"),
}


@pytest.mark.parametrize(
    ("service", "uplink_service", "section"),
    [("corti", "corti", "corti"), ("dice", "dice", "dice"), ("aws", "aws-healthscribe", "aws")],
)
def test_emulator_service_flag_serves_that_service_and_writes_its_device_config(
    tmp_path: Path, service: str, uplink_service: str, section: str
) -> None:
    """`emulator --service X`: one line with the URLs, a device config naming the service
    (validated by the real loader), a listening port, and a clean exit on SIGTERM."""
    device = tmp_path / "device" / "config.toml"
    env = {k: v for k, v in os.environ.items() if not k.startswith("EDGE_RECORDER")}
    proc = subprocess.Popen(
        [
            sys.executable, "-m", "edge_recorder", "emulator", "--service", service,
            "--data-dir", str(tmp_path / "data"), "--http-port", "0",
            "--device-config", str(device), "--log-level", "WARNING",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )  # fmt: skip
    try:
        first = _read_line(proc, time.monotonic() + 30)
        assert first.startswith(f"{service}-emulator "), first
        ports = dict(re.findall(r"(\w+)=(\S+)", first))
        with urllib.request.urlopen(f"{ports['http_url']}/_emulator/sessions", timeout=10) as r:
            assert r.status == 200
        config = load_config(device, environ={})
        assert config.uplink.service == uplink_service
        assert getattr(config, section) != type(getattr(config, section))()  # pointed here
        # `check --probe` with that config gets a credential and reaches the service
        probe_env = dict(env, AWS_SHARED_CREDENTIALS_FILE=str(device.parent / "aws-credentials"))
        for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE"):
            probe_env.pop(name, None)
        check = subprocess.run(
            [sys.executable, "-m", "edge_recorder", "check", "--probe", "--json",
             "--config", str(device)],
            capture_output=True, text=True, env=probe_env, timeout=60,
        )  # fmt: skip
        rows = {row["name"]: row for row in json.loads(check.stdout)}
        wanted = PROBE_ROWS[service]
        assert all(rows[name]["status"] == "ok" for name in wanted), rows
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
