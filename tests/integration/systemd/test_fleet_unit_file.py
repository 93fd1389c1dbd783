"""The dashboard's unit (edge-recorder-fleet.service), checked like the device's: by systemd's
own `verify` and `security`, and against what the dashboard code actually reads and writes."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from edge_recorder.config.errors import EX_CONFIG
from edge_recorder.dashboard.config import DEFAULT_PATH, DashboardConfig
from tests.integration.systemd.units import (
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

UNIT = SYSTEMD_DIR / "edge-recorder-fleet.service"
SYSUSERS = SYSTEMD_DIR / "sysusers.d" / "edge-recorder-fleet.conf"
DASHBOARD_SOURCE = Path(__file__).resolve().parents[3] / "edge_recorder" / "dashboard"


def test_verify_passes_with_the_venv_binary(tmp_path: Path) -> None:
    result = analyze("verify", str(with_venv_exec(UNIT, tmp_path)), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert about_our_unit(result) == []  # verify exits 0 on lines it ignores: none allowed


def test_verify_of_the_shipped_unit_only_misses_the_installed_binary(tmp_path: Path) -> None:
    result = analyze("verify", str(UNIT), cwd=tmp_path)
    assert about_our_unit(result) == [
        f"edge-recorder-fleet.service: Command {INSTALLED_EXEC} is not executable: "
        "No such file or directory"
    ]


def test_verify_catches_a_broken_directive(tmp_path: Path) -> None:
    broken = UNIT.read_text().replace("WatchdogSec=30s", "WatchdogSec=soon")
    bad = with_venv_exec(UNIT, tmp_path, broken)
    assert "soon" in "\n".join(about_our_unit(analyze("verify", str(bad), cwd=tmp_path)))


def test_security_exposure_is_at_most_2_0(tmp_path: Path) -> None:
    result = security(UNIT, tmp_path)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr
    level = exposure(result.stdout)
    assert level <= MAX_EXPOSURE
    claimed = re.search(r"security --offline=true`: (\d+\.\d+)", UNIT.read_text())
    assert claimed and float(claimed.group(1)) == level  # the header comment tells the truth


def test_security_threshold_fails_an_unhardened_unit(tmp_path: Path) -> None:
    result = security(unhardened(UNIT, tmp_path), tmp_path)
    assert result.returncode != 0
    assert exposure(result.stdout) > MAX_EXPOSURE


def test_supervision_directives() -> None:
    d = directives(UNIT)
    assert d["Type"] == ["notify"] and d["NotifyAccess"] == ["main"]
    assert d["WatchdogSec"] == ["30s"]  # the server pings WATCHDOG=1 from its loop
    assert d["Restart"] == ["on-failure"]
    assert d["RestartPreventExitStatus"] == [str(EX_CONFIG)]  # bad config / unsafe exposure
    assert d["ExecStart"] == [f"{INSTALLED_EXEC} fleet serve --config {DEFAULT_PATH}"]
    assert d["WantedBy"] == ["multi-user.target"]


def test_history_and_audit_log_live_in_the_state_directory() -> None:
    d = directives(UNIT)
    (state,) = d["StateDirectory"]
    defaults = DashboardConfig()
    assert defaults.history.path.parent == Path("/var/lib") / state
    assert defaults.audit_log.parent == Path("/var/lib") / state
    assert d["StateDirectoryMode"] == ["0700"] and d["UMask"] == ["0077"]
    assert d["ProtectSystem"] == ["strict"]  # so the StateDirectory is the only writable place


def test_a_network_server_without_devices() -> None:
    d = directives(UNIT)
    assert set(d["RestrictAddressFamilies"][0].split()) == {"AF_UNIX", "AF_INET", "AF_INET6"}
    assert "PrivateNetwork" not in d
    assert d["PrivateDevices"] == ["yes"] and d["DevicePolicy"] == ["closed"]
    assert "DeviceAllow" not in d and "SupplementaryGroups" not in d
    assert d["CapabilityBoundingSet"] == [""] and d["NoNewPrivileges"] == ["yes"]
    device_unit = directives()
    stronger_or_equal = [k for k, v in device_unit.items() if v == ["yes"] and k in d]
    for key in stronger_or_equal:  # every "yes" hardening of the device unit is kept here
        assert d[key] == ["yes"], key
    missing = {k for k, v in device_unit.items() if v == ["yes"]} - set(d)
    assert missing == set()


def test_credentials_cover_every_secret_the_dashboard_reads() -> None:
    loaded = dict(v.split(":", 1) for v in directives(UNIT)["LoadCredential"])
    read = set()
    for source in DASHBOARD_SOURCE.glob("*.py"):
        read |= set(re.findall(r"read_secret\([^,]+,\s*\"([a-z-]+)\"", source.read_text()))
    assert read, "the dashboard reads no systemd credential?"
    assert read <= set(loaded)
    for name, source_name in loaded.items():
        assert source_name == f"edge-recorder-fleet.{name}"  # optional, from /etc/credstore


def test_sysusers_creates_the_service_user(tmp_path: Path) -> None:
    (user,) = directives(UNIT)["User"]
    assert directives(UNIT)["Group"] == [user]
    (tmp_path / "etc").mkdir()  # an empty root: sysusers creates passwd and group
    result = subprocess.run(
        ["systemd-sysusers", f"--root={tmp_path}", str(SYSUSERS)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    entries = {
        line.split(":")[0]: line.split(":")
        for line in (tmp_path / "etc/passwd").read_text().splitlines()
    }
    assert entries[user][5] == "/var/lib/edge-recorder-fleet"
    assert entries[user][6] == "/usr/sbin/nologin"
    groups = {
        line.split(":")[0]: line.split(":")[3]
        for line in (tmp_path / "etc/group").read_text().splitlines()
    }
    assert user in groups
    assert not any(user in members.split(",") for members in groups.values())  # no extra groups
