"""`systemd/install.sh --dashboard` builds a fleet dashboard host (into a temporary root): the
locked core plus the `dashboard` extra and nothing else, the dashboard's unit and user but not
the device's, its config directory readable by that user only; the installed `fleet serve`
then serves the pages bundled in the wheel (no checkout, no npm)."""

from __future__ import annotations

import stat
import subprocess
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge_recorder.dashboard.broker import Broker, free_port
from tests.integration.install.test_device_install import frozen, install, pins
from tests.support.mosquitto import wait_until


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    target = tmp_path_factory.mktemp("dashboard") / "root"
    target.mkdir()
    install(target, "--dashboard")
    yield target


def test_a_dashboard_host_gets_exactly_the_core_and_the_dashboard_extra(root: Path) -> None:
    expected = pins("build.txt", "device.txt", "extra-dashboard.txt")
    assert frozen(root) == {**expected, "edge-recorder": "0.1.0"}


def test_it_installs_the_dashboard_unit_and_not_the_device(root: Path) -> None:
    units = root / "etc/systemd/system"
    assert (units / "edge-recorder-fleet.service").is_file()
    assert not (units / "edge-recorder.service").exists()
    assert "edge-recorder-fleet:" in (root / "etc/passwd").read_text()
    assert not (root / "etc/credstore/edge-recorder.spool-key").exists()  # no device spool


def test_its_config_is_readable_by_the_dashboard_user_only(root: Path) -> None:
    group = next(
        line.split(":")[2]
        for line in (root / "etc/group").read_text().splitlines()
        if line.startswith("edge-recorder-fleet:")
    )
    folder, config = root / "etc/edge-recorder-fleet", root / "etc/edge-recorder-fleet/fleet.toml"
    assert stat.S_IMODE(folder.stat().st_mode) == 0o750
    assert stat.S_IMODE(config.stat().st_mode) == 0o640
    assert (folder.stat().st_uid, folder.stat().st_gid) == (0, int(group))
    assert (config.stat().st_uid, config.stat().st_gid) == (0, int(group))
    config.write_text(config.read_text() + "\n# edited\n")
    install(root, "--dashboard", "--no-venv")  # an upgrade keeps the site's edits
    assert config.read_text().endswith("# edited\n")


def test_the_installed_dashboard_serves_its_bundled_pages(root: Path, tmp_path: Path) -> None:
    broker = Broker(workdir=tmp_path / "broker")
    broker.start()
    port = free_port()
    config = tmp_path / "fleet.toml"
    config.write_text(
        f'audit_log = "{tmp_path / "audit.log"}"\n'
        f'[mqtt]\nhost = "127.0.0.1"\nport = {broker.port}\n'
        f'[http]\nhost = "127.0.0.1"\nport = {port}\n'
        f'[history]\npath = "{tmp_path / "history.sqlite3"}"\n'
    )
    server = subprocess.Popen(
        [
            str(root / "opt/edge-recorder/venv/bin/edge-recorder"),
            *("fleet", "serve", "--config", str(config)),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert server.stdout is not None
        line = server.stdout.readline()
        assert line.startswith(f"dashboard: http://127.0.0.1:{port}/"), line
        base = f"http://127.0.0.1:{port}"
        wait_until(lambda: _get(f"{base}/healthz")[0] == 200, what="the broker subscription")
        status, page = _get(f"{base}/")
        assert status == 200 and b'data-testid="fleet-table"' in page
        status, chart = _get(f"{base}/static/vendor/uPlot.iife.min.js")
        assert status == 200 and len(chart) > 10_000
    finally:
        server.terminate()
        assert server.wait(timeout=20) == 0
        broker.stop()


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as reply:
            return int(reply.status), reply.read()
    except OSError:
        return 0, b""
