"""The upgrade under a real systemd: a Debian 12 root made with debootstrap (the package's
runtime dependencies only) is booted with systemd-nspawn, systemd is PID 1, and a oneshot unit
runs `upgrade_scenario.sh`: dpkg installs 0.1.0 and the service starts (Type=notify: READY from
the real daemon); 0.1.1, whose check rejects the config, must leave the same process running and
a restart on the old release; 0.1.2 must restart the service on the new release. What ran is
read from each main process's memory map (the kernel resolves the venv link)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.timeout(900)

HERE = Path(__file__).resolve().parent
MIRROR = os.environ.get("DEBIAN_MIRROR", "http://deb.debian.org/debian")
RUNTIME = "systemd,systemd-sysv,dbus,python3,libasound2,libopus0,ca-certificates"
SCENARIO_UNIT = """[Unit]
Description=edge-recorder upgrade scenario (test)
After=multi-user.target

[Service]
Type=oneshot
ExecStart=/bin/sh /er/upgrade_scenario.sh
StandardOutput=file:/er/out/scenario.log
StandardError=inherit
ExecStopPost=/bin/systemctl --no-block poweroff

[Install]
WantedBy=multi-user.target
"""


def tool(name: str, package: str) -> str:
    """A host tool `make` installs (APT_PACKAGES in the Makefile)."""
    found = shutil.which(name)
    assert found, f"{name} is missing: install {package} (make does)"
    return found


@pytest.fixture(scope="module")
def booted_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("bookworm") / "root"
    done = subprocess.run(
        [tool("debootstrap", "debootstrap"), "--variant=minbase", f"--include={RUNTIME}",
         "bookworm", str(root), MIRROR],
        capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    units = root / "etc/systemd/system"
    (units / "er-scenario.service").write_text(SCENARIO_UNIT)
    (units / "multi-user.target.wants").mkdir(exist_ok=True)
    (units / "multi-user.target.wants/er-scenario.service").symlink_to(
        "/etc/systemd/system/er-scenario.service"
    )
    return root


def test_an_upgrade_restarts_the_service_only_onto_a_release_that_passes_check(
    booted_root: Path, releases: dict[str, Path], tmp_path: Path
) -> None:
    share = tmp_path / "er"
    (share / "debs").mkdir(parents=True)
    (share / "out").mkdir()
    for version in ("0.1.0", "0.1.1", "0.1.2"):
        os.link(releases[version], share / "debs" / f"{version}.deb")
    shutil.copy(HERE / "upgrade_scenario.sh", share / "upgrade_scenario.sh")
    booted = subprocess.run(
        [tool("systemd-nspawn", "systemd-container"), "--quiet", "--boot", "--register=no",
         "--keep-unit", "--console=pipe", f"--directory={booted_root}", f"--bind={share}:/er"],
        stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    out = share / "out"
    logs = {p.name: p.read_text(errors="replace")[-3000:] for p in out.glob("*.log")}
    steps_file = out / "steps"
    assert steps_file.exists(), (booted.stdout[-3000:], booted.stderr[-3000:], logs)
    lines = steps_file.read_text().splitlines()
    assert lines[-1:] == ["done"], (lines, logs)
    steps = {
        line.split()[0]: dict(field.split("=", 1) for field in line.split()[1:])
        for line in lines[:-1]
    }

    installed = steps["installed"]
    assert installed["state"] == "active" and installed["release"] == "release,", (steps, logs)
    assert installed["link"] == "release"

    broken = steps["broken-release"]
    assert broken["rc"] != "0"  # dpkg reports the failed configure
    assert broken["state"] == "active" and broken["pid"] == installed["pid"], steps
    assert broken["link"] == "previous"
    assert "NOT switching to the new version" in logs["bad.log"]

    restarted = steps["restarted-after-broken"]
    assert restarted["state"] == "active" and restarted["pid"] != installed["pid"]
    assert restarted["release"] == "previous,", steps  # the old release, kept by preinst

    fixed = steps["fixed-release"]
    assert fixed["rc"] == "0", logs
    assert fixed["state"] == "active" and fixed["pid"] != restarted["pid"], steps
    assert fixed["release"] == "release," and fixed["link"] == "release", steps
    assert "restarted edge-recorder.service on the new version" in logs["good.log"]
