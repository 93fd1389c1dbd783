"""The shipped unit, checked by systemd's own tools: `systemd-analyze verify` and `security`."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from edge_recorder.spool.crypto import CREDENTIAL_NAME as SPOOL_KEY_CREDENTIAL
from tests.integration.systemd.units import (
    DEVICE_UNIT,
    INSTALLED_EXEC,
    MAX_EXPOSURE,
    SYSTEMD_DIR,
    about_our_unit,
    analyze,
    directives,
    exposure,
    security,
    unhardened,
    with_venv_exec,
)

UNIT = DEVICE_UNIT


def test_verify_passes_with_the_venv_binary(tmp_path: Path) -> None:
    """verify of a copy whose ONLY change is ExecStart at this venv's `edge-recorder`."""
    result = analyze("verify", str(with_venv_exec(UNIT, tmp_path)), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    # verify exits 0 even for lines it ignores ("Invalid syntax, ignoring"), so any message
    # about our unit is a failure too.
    assert about_our_unit(result) == []


def test_verify_of_the_shipped_unit_only_misses_the_installed_binary(tmp_path: Path) -> None:
    result = analyze("verify", str(UNIT), cwd=tmp_path)
    assert about_our_unit(result) == [
        f"edge-recorder.service: Command {INSTALLED_EXEC} is not executable: "
        "No such file or directory"
    ]


def test_verify_catches_a_broken_directive(tmp_path: Path) -> None:
    """Guards the check above: a bad line does produce a message about our unit."""
    text = UNIT.read_text()
    broken = text.replace(
        "RestartPreventExitStatus=77 78", "RestartPreventExitStatus=seventy-eight"
    )
    result = analyze("verify", str(with_venv_exec(UNIT, tmp_path, broken)), cwd=tmp_path)
    assert "seventy-eight" in result.stdout + result.stderr


def test_security_exposure_is_at_most_2_0(tmp_path: Path) -> None:
    result = security(UNIT, tmp_path)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr
    assert exposure(result.stdout) <= MAX_EXPOSURE


def test_security_threshold_fails_an_unhardened_unit(tmp_path: Path) -> None:
    """Guards the check above: the same command rejects a unit without the hardening block."""
    result = security(unhardened(UNIT, tmp_path), tmp_path)
    assert result.returncode != 0
    assert exposure(result.stdout) > MAX_EXPOSURE


def test_supervision_directives() -> None:
    d = directives()
    assert d["Type"] == ["notify"]
    assert d["NotifyAccess"] == ["main"]
    assert d["WatchdogSec"] == ["20s"]
    assert d["Restart"] == ["on-failure"]
    assert d["RestartPreventExitStatus"] == ["77 78"]  # EX_NOPERM, EX_CONFIG
    assert d["ExecReload"] == ["/bin/kill -HUP $MAINPID"]
    assert d["ExecStart"] == [f"{INSTALLED_EXEC} run --config /etc/edge-recorder/config.toml"]
    assert d["StateDirectory"] == d["RuntimeDirectory"] == ["edge-recorder"]
    assert d["RuntimeDirectoryMode"] == ["0750"]
    assert "TimeoutStopSec" in d


def test_no_restart_for_every_status_a_person_must_act_on() -> None:
    """The unit must not restart on what a restart cannot cure (a config, a key, a
    permission): the code's one table says which statuses those are, and the unit lists
    exactly them."""
    from edge_recorder.support import exitcodes

    (listed,) = directives()["RestartPreventExitStatus"]
    assert tuple(sorted(int(code) for code in listed.split())) == exitcodes.no_restart_codes()
    assert exitcodes.no_restart_codes() == (
        exitcodes.NO_ACCESS.code,
        exitcodes.CONFIG.code,
    )
    restarted = [c for c in exitcodes.DAEMON_CODES if c.code and not c.person_must_act]
    assert {c.code for c in restarted} == {exitcodes.FAILURE.code, exitcodes.SPOOL_LOCKED.code}
    assert len({c.code for c in exitcodes.DAEMON_CODES}) == len(exitcodes.DAEMON_CODES)


def test_hardware_and_network_stay_reachable() -> None:
    """The hardening must not cut the device off from what it exists to use."""
    d = directives()
    assert "PrivateDevices" not in d, "PrivateDevices hides /dev/snd and /dev/gpiochip*"
    assert "PrivateNetwork" not in d
    assert d["DevicePolicy"] == ["closed"]
    assert {"char-alsa rw", "char-gpiochip rw"} <= set(d["DeviceAllow"])
    families = set(d["RestrictAddressFamilies"][0].split())
    assert {"AF_UNIX", "AF_INET", "AF_INET6"} <= families
    assert d["User"] == ["edge-recorder"]
    assert set(d["SupplementaryGroups"][0].split()) == {"audio", "gpio"}
    assert d["ProtectSystem"] == ["strict"]  # writable: State/RuntimeDirectory only
    # lgpio needs a writable working directory for its FIFOs.
    assert "LG_WD=/run/edge-recorder" in d["Environment"]


def test_credentials_match_the_names_the_code_reads() -> None:
    from edge_recorder.uplinks.corti.factory import SECRET_CREDENTIAL as CORTI_SECRET
    from edge_recorder.uplinks.dice.factory import PASSWORD_CREDENTIAL as DICE_PASSWORD

    loaded = {v.split(":", 1)[0]: v.split(":", 1)[1] for v in directives()["LoadCredential"]}
    assert set(loaded) == {
        SPOOL_KEY_CREDENTIAL,
        "aas-client-secret",
        "mqtt-password",
        CORTI_SECRET,
        DICE_PASSWORD,
    }
    for name, source in loaded.items():
        # Relative source = looked up in /etc/credstore/ and skipped when absent (systemd 252).
        assert source == f"edge-recorder.{name}"


@pytest.mark.parametrize("name", ["sysusers.d", "tmpfiles.d"])
def test_companion_files_exist(name: str) -> None:
    assert (SYSTEMD_DIR / name / "edge-recorder.conf").is_file()
    assert shutil.which("systemd-sysusers") and shutil.which("systemd-tmpfiles")
