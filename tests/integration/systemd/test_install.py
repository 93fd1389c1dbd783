"""systemd/install.sh into a temporary root: the real systemd-sysusers and systemd-tmpfiles run
with --root; apt, pip and systemctl are skipped (they would act on this machine)."""

from __future__ import annotations

import os
import re
import stat
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
INSTALL = REPO / "systemd" / "install.sh"


def run(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EDGE_RECORDER")}
    env["EDGE_RECORDER_INSTALL_ROOT"] = str(root)
    return subprocess.run(
        ["bash", str(INSTALL), "--no-venv", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )


def installed(root: Path) -> subprocess.CompletedProcess[str]:
    result = run(root)
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def ids(root: Path, table: str, name: str) -> int:
    for line in (root / "etc" / table).read_text().splitlines():
        fields = line.split(":")
        if fields[0] == name:
            return int(fields[2])
    raise AssertionError(f"{name} not in {table}")


@pytest.fixture
def root(tmp_path: Path) -> Path:
    target = tmp_path / "root"
    target.mkdir()
    return target


def test_install_builds_the_tree_with_owners_and_modes(root: Path) -> None:
    installed(root)
    uid = ids(root, "passwd", "edge-recorder")
    gid = ids(root, "group", "edge-recorder")
    passwd = (root / "etc/passwd").read_text()
    assert re.search(
        r"^edge-recorder:x:\d+:\d+:[^:]*:/var/lib/edge-recorder:/usr/sbin/nologin$", passwd, re.M
    )
    group = (root / "etc/group").read_text()
    for supplementary in ("audio", "gpio"):
        assert re.search(rf"^{supplementary}:x:\d+:.*\bedge-recorder\b", group, re.M)

    expected = {
        "etc/systemd/system/edge-recorder.service": (0o644, 0, 0),
        "etc/sysusers.d/edge-recorder.conf": (0o644, 0, 0),
        "etc/tmpfiles.d/edge-recorder.conf": (0o644, 0, 0),
        "etc/edge-recorder": (0o750, 0, gid),
        "etc/edge-recorder/config.toml": (0o640, 0, gid),
        "etc/credstore": (0o700, 0, 0),
        "etc/credstore/edge-recorder.spool-key": (0o600, 0, 0),
        "var/lib/edge-recorder": (0o750, uid, gid),
        "var/lib/edge-recorder/spool": (0o700, uid, gid),
    }
    for rel, (want_mode, want_uid, want_gid) in expected.items():
        st = (root / rel).stat()
        assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid) == (
            want_mode,
            want_uid,
            want_gid,
        ), rel
    assert (root / "etc/systemd/system/edge-recorder.service").read_bytes() == (
        REPO / "systemd/edge-recorder.service"
    ).read_bytes()
    assert (root / "etc/edge-recorder/config.toml").read_bytes() == (
        REPO / "config.example.toml"
    ).read_bytes()
    key = (root / "etc/credstore/edge-recorder.spool-key").read_bytes()
    assert len(key) == 32 and len(set(key)) > 8  # random, not a constant fill


def test_second_run_changes_nothing_and_never_overwrites(root: Path) -> None:
    installed(root)
    config = root / "etc/edge-recorder/config.toml"
    config.write_text('[device]\nlocation = "Room 4"\n')
    key = root / "etc/credstore/edge-recorder.spool-key"
    key_before = key.read_bytes()
    passwd_before = (root / "etc/passwd").read_text()
    group_before = (root / "etc/group").read_text()

    second = installed(root)
    assert "keeping existing /etc/edge-recorder/config.toml" in second.stdout
    assert "keeping existing spool key" in second.stdout
    assert config.read_text() == '[device]\nlocation = "Room 4"\n'
    assert key.read_bytes() == key_before
    assert (root / "etc/passwd").read_text() == passwd_before
    assert (root / "etc/group").read_text() == group_before
    assert mode(config) == 0o640 and mode(key) == 0o600


def test_uninstall_keeps_spool_config_and_key(root: Path) -> None:
    installed(root)
    venv = root / "opt/edge-recorder/venv/bin"
    venv.mkdir(parents=True)
    (venv / "edge-recorder").write_text("#!/bin/sh\n")
    segment = root / "var/lib/edge-recorder/spool/segments" / (("a" * 32) + "-" + "0" * 16 + ".seg")
    segment.parent.mkdir()
    segment.write_bytes(b"undelivered audio")

    result = run(root, "--uninstall")
    assert result.returncode == 0, result.stderr
    assert not (root / "etc/systemd/system/edge-recorder.service").exists()
    assert not (root / "etc/sysusers.d/edge-recorder.conf").exists()
    assert not (root / "etc/tmpfiles.d/edge-recorder.conf").exists()
    assert not (root / "opt/edge-recorder").exists()
    assert segment.read_bytes() == b"undelivered audio"
    assert (root / "etc/edge-recorder/config.toml").is_file()
    assert (root / "etc/credstore/edge-recorder.spool-key").is_file()
    # Idempotent too, and a reinstall finds everything it kept.
    assert run(root, "--uninstall").returncode == 0
    assert "keeping existing spool key" in installed(root).stdout


def test_purge_refuses_while_the_spool_holds_audio_unless_forced(root: Path) -> None:
    installed(root)
    segment = root / "var/lib/edge-recorder/spool/segments/x.seg"
    segment.parent.mkdir()
    segment.write_bytes(b"\x00" * 10)

    refused = run(root, "--uninstall", "--purge")
    assert refused.returncode != 0
    assert "still holds undelivered audio" in refused.stderr
    assert segment.exists()
    assert (root / "etc/systemd/system/edge-recorder.service").exists()  # nothing removed

    forced = run(root, "--uninstall", "--purge", "--force")
    assert forced.returncode == 0, forced.stderr
    for gone in (
        "var/lib/edge-recorder",
        "etc/edge-recorder",
        "etc/credstore/edge-recorder.spool-key",
    ):
        assert not (root / gone).exists(), gone


def test_purge_of_a_delivered_spool_needs_no_force(root: Path) -> None:
    installed(root)
    (root / "var/lib/edge-recorder/spool/ledger.json").write_text("{}")  # bookkeeping only
    result = run(root, "--uninstall", "--purge")
    assert result.returncode == 0, result.stderr
    assert not (root / "var/lib/edge-recorder").exists()


def test_purge_checks_the_spool_dir_named_in_the_config(root: Path) -> None:
    installed(root)
    config = root / "etc/edge-recorder/config.toml"
    config.write_text('[spool]\ndir = "/data/spool"  # moved to the SSD\n')
    segment = root / "data/spool/segments/y.seg"
    segment.parent.mkdir(parents=True)
    segment.write_bytes(b"audio")
    refused = run(root, "--uninstall", "--purge")
    assert refused.returncode != 0 and "/data/spool" in refused.stderr


@pytest.mark.parametrize(
    "args", [("--purge",), ("--uninstall", "--force"), ("--bogus",), ("--root",)]
)
def test_bad_arguments_are_refused(root: Path, args: tuple[str, ...]) -> None:
    result = run(root, *args)
    assert result.returncode != 0 and "error:" in result.stderr
    assert not (root / "etc").exists()


def test_apt_packages_are_a_subset_of_the_makefile_list() -> None:
    makefile = (REPO / "Makefile").read_text()
    block = re.search(r"^APT_PACKAGES :=((?:.*\\\n)*.*)$", makefile, re.M)
    assert block
    make_list = set(block.group(1).replace("\\\n", " ").split())
    script = INSTALL.read_text()
    ours = re.search(r"APT_RUNTIME_PACKAGES=\(([^)]*)\)", script)
    assert ours
    runtime = set(ours.group(1).split())
    assert runtime <= make_list, runtime - make_list
    assert {"python3-venv", "libasound2-plugins", "libsystemd-dev"} <= runtime
