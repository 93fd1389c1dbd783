"""`edge-recorder check` as a real process: exit codes and messages a technician reads."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import RunCli


def test_version_and_help(run_cli: RunCli) -> None:
    version = run_cli("--version")
    assert version.returncode == 0 and version.stdout.startswith("edge-recorder ")
    helptext = run_cli("--help")
    assert helptext.returncode == 0 and "check" in helptext.stdout


def test_example_config_is_valid_but_cannot_deliver(run_cli: RunCli, repo_root: Path) -> None:
    """The example has no service endpoint: a daemon would record and deliver nothing, so
    `check` fails it as a config error (78), naming the missing key."""
    result = run_cli("check", "--config", str(repo_root / "config.example.toml"))
    assert result.returncode == 78, result.stdout
    assert "config.example.toml is valid" in result.stdout
    assert "FAIL  delivery" in result.stdout and "aas cannot deliver: auth." in result.stdout
    assert "result: FAILED" in result.stdout
    assert "audio" in result.stdout and "plughw:CARD=" in result.stdout


def test_unknown_section_exits_78_and_names_it(run_cli: RunCli, tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text("[audio]\nrate = 16000\n[mqqt]\nhost = 'localhost'\n")
    result = run_cli("check", "--config", str(config))
    assert result.returncode == 78
    assert "mqqt: unknown section; did you mean 'mqtt'?" in result.stderr


def test_wrongly_typed_rate_exits_78_and_names_it(run_cli: RunCli, tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text('[audio]\nrate = "sixteen thousand"\n')
    result = run_cli("check", "--config", str(config))
    assert result.returncode == 78
    assert "  audio.rate: " in result.stderr
    assert result.stdout == ""


def test_env_override_error_exits_78(run_cli: RunCli, repo_root: Path) -> None:
    result = run_cli(
        "check",
        "--config",
        str(repo_root / "config.example.toml"),
        env={"EDGE_RECORDER__AUDIO__RATE": "7"},
    )
    assert result.returncode == 78 and "audio.rate:" in result.stderr


def test_config_path_from_environment(run_cli: RunCli, tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text("[device]\nid = 'exam-7'\n")
    result = run_cli("check", env={"EDGE_RECORDER_CONFIG": str(config)})
    assert "id=exam-7" in result.stdout and f"{config} is valid" in result.stdout


def test_missing_config_file_exits_78(run_cli: RunCli, tmp_path: Path) -> None:
    result = run_cli("check", "--config", str(tmp_path / "nope.toml"))
    assert result.returncode == 78 and "config file not found" in result.stderr


def test_check_does_not_touch_the_spool(run_cli: RunCli, tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    config = tmp_path / "c.toml"
    config.write_text(f"[spool]\ndir = '{spool}'\nkey_file = '{tmp_path / 'k'}'\n")
    assert "is valid" in run_cli("check", "--config", str(config)).stdout
    assert not spool.exists() and not (tmp_path / "k").exists()


def test_secret_references_are_reported_without_values(run_cli: RunCli, tmp_path: Path) -> None:
    secret = tmp_path / "client-secret"
    secret.write_text("very-secret-value\n")
    config = tmp_path / "c.toml"
    config.write_text(f"[auth]\nclient_id = 'dev'\nclient_secret_file = '{secret}'\n")
    result = run_cli("check", "--config", str(config), "--json")
    assert result.returncode == 78  # no endpoints: cannot deliver
    assert str(secret) in result.stdout and "very-secret-value" not in result.stdout


def test_credentials_directory_is_used(run_cli: RunCli, tmp_path: Path) -> None:
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "aas-client-secret").write_text("x")
    config = tmp_path / "c.toml"
    config.write_text("[auth]\nclient_id = 'dev'\n")
    result = run_cli("check", "--config", str(config), env={"CREDENTIALS_DIRECTORY": str(creds)})
    assert "ok    auth client secret" in result.stdout
    assert str(creds / "aas-client-secret") in result.stdout


def test_a_world_writable_control_socket_exits_78(run_cli: RunCli, tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text("[control]\nsocket_mode = 0o777\n")
    result = run_cli("check", "--config", str(config))
    assert result.returncode == 78
    assert "control.socket_mode: 0o777 lets every local user" in result.stderr


def test_plain_http_for_a_client_secret_exits_78_in_any_spelling(
    run_cli: RunCli, tmp_path: Path
) -> None:
    """The reported case: an upper-case scheme passed the loopback-only plain-text rule."""
    config = tmp_path / "c.toml"
    for url in ("HTTP://auth.example.net/realms", "Http://auth.example.net/realms"):
        config.write_text(f"[uplink]\nservice = 'corti'\n[corti]\nauth_url = '{url}'\n")
        result = run_cli("check", "--config", str(config))
        assert result.returncode == 78, result.stdout
        assert "corti.auth_url: must use TLS (https://) outside loopback" in result.stderr


@pytest.mark.parametrize("command", ["check", "run"])
def test_a_config_that_is_not_utf8_exits_78_without_a_traceback(
    run_cli: RunCli, tmp_path: Path, command: str
) -> None:
    config = tmp_path / "c.toml"
    config.write_bytes(b'[device]\nlocation = "Z\xfcrich Room-Marker"\n')
    result = run_cli(command, "--config", str(config))
    assert result.returncode == 78  # before: 1, a UnicodeDecodeError traceback
    assert "Traceback" not in result.stderr and "Room-Marker" not in result.stderr
    assert f"{config}: not UTF-8 text (byte 0xfc at line 2, column 14)" in result.stderr


def test_a_nul_in_a_path_exits_78_before_the_spool_is_touched(
    run_cli: RunCli, tmp_path: Path
) -> None:
    """TOML can spell a NUL; the first mkdir() would raise ValueError (a traceback, exit 1)."""
    config = tmp_path / "c.toml"
    config.write_text('[spool]\ndir = "/tmp/spool\\u0000x"\n[audio]\nsource = "synthetic"\n')
    result = run_cli("run", "--config", str(config))
    assert result.returncode == 78 and "Traceback" not in result.stderr
    assert "spool.dir: a path must not contain a NUL character" in result.stderr


def test_a_profile_outvoted_by_generic_defaults_is_a_warning(
    run_cli: RunCli, tmp_path: Path
) -> None:
    """A config file kept from when the shipped example wrote out every key: the profile it
    names loses to those lines, and `check` (run by the package's upgrade gate and Ansible)
    says which ones, without failing the config."""
    config = tmp_path / "c.toml"
    config.write_text('[audio]\nprofile = "respeaker-6mic-array"\nchannels = 1\nrate = 16000\n')
    result = run_cli("check", "--config", str(config))
    assert "WARN  audio profile        audio.channels = 1 (the generic default)" in result.stdout
    assert "audio.rate" not in result.stdout.split("WARN", 1)[1]  # the profile's own value
    assert "FAIL  config" not in result.stdout
