"""`fleet watch` not told where the broker is exits 2 (usage), as docs/fleet.md says, also
when there is no config file at all; an invalid config file stays a config error (78)."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import RunCli


def test_watch_without_a_config_file_is_a_usage_error(run_cli: RunCli, tmp_path: Path) -> None:
    missing = tmp_path / "none.toml"
    result = run_cli("fleet", "watch", "--once", env={"EDGE_RECORDER_CONFIG": str(missing)})
    assert result.returncode == 2, result.stderr
    assert "no broker: give --broker" in result.stderr and str(missing) in result.stderr
    explicit = run_cli("fleet", "watch", "--once", "--config", str(missing))
    assert explicit.returncode == 2 and "no broker" in explicit.stderr


def test_an_invalid_config_is_still_a_config_error(run_cli: RunCli, tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text("[mqtt]\nport = -1\n")
    result = run_cli("fleet", "watch", "--once", "--config", str(config))
    assert result.returncode == 78
    assert "mqtt.port" in result.stderr
