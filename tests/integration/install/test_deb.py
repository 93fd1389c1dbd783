"""`python -m devtools.deb.build` builds a real .deb (once, zstd-compressed for speed: the
contents are the same as the released xz one), then it is inspected with dpkg-deb itself:
control fields, conffiles, the files against the repository's, exactly the locked packages in
its venv, a venv that runs from the extracted tree, and the maintainer scripts run against a
temporary root (DPKG_ROOT, like dpkg does for a chroot): user, directories, spool key created
once, enabling, and the purge rule. Upgrades and their restarts: test_apt_repo.py (dpkg into a
temporary root) and test_deb_systemd.py (a booted systemd)."""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from devtools.deb import build
from tests.integration.install.test_device_install import frozen, pins

pytestmark = pytest.mark.timeout(900)

REPO = Path(__file__).resolve().parents[3]
VENV = "opt/edge-recorder/venv"


def dpkg_deb(*args: str | Path) -> str:
    return subprocess.run(
        ["dpkg-deb", *map(str, args)], capture_output=True, text=True, check=True
    ).stdout


@pytest.fixture(scope="module")
def tree(deb: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("extracted")
    dpkg_deb("-x", deb, root)
    (root / VENV).symlink_to("release")  # what postinst makes
    return root


@pytest.fixture(scope="module")
def scripts(deb: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    control = tmp_path_factory.mktemp("control")
    dpkg_deb("-e", deb, control)
    return control


def field(deb: Path, name: str) -> str:
    return dpkg_deb("--field", deb, name).strip()


def test_the_name_version_and_architecture(deb: Path) -> None:
    arch = subprocess.run(["dpkg", "--print-architecture"], capture_output=True, text=True)
    assert deb.name == f"edge-recorder_0.1.0_{arch.stdout.strip()}.deb"
    assert field(deb, "Package") == "edge-recorder"
    assert field(deb, "Version") == "0.1.0"
    assert field(deb, "Architecture") == arch.stdout.strip()


def test_it_depends_on_runtime_packages_only(deb: Path) -> None:
    depends = [d.strip() for d in field(deb, "Depends").split(",")]
    names = {d.split()[0] for d in depends}
    assert "python3 (>= 3.11)" in depends and "python3 (<< 3.12)" in depends
    assert {"libasound2", "libsystemd0", "libopus0", "systemd", "libc6"} <= names
    assert not [n for n in names if n.endswith("-dev")], depends
    assert not names & {"gcc", "g++", "cpp", "clang", "pkg-config", "make", "python3-dev"}
    assert not [n for n in names if re.match(r"gcc-\d", n)], depends
    assert "python3-venv" not in names  # the venv exists already: ensurepip is a build need
    assert field(deb, "Recommends") == "alsa-utils, libasound2-plugins"


def test_the_config_is_a_conffile_and_the_scripts_are_valid_sh(scripts: Path) -> None:
    assert (scripts / "conffiles").read_text().split() == ["/etc/edge-recorder/config.toml"]
    for name in ("preinst", "postinst", "prerm", "postrm"):
        path = scripts / name
        assert path.stat().st_mode & stat.S_IXUSR, name
        assert path.read_text().startswith("#!/bin/sh\n"), name
        done = subprocess.run(["sh", "-n", str(path)], capture_output=True, text=True)
        assert done.returncode == 0, (name, done.stderr)


def test_the_files_are_the_repositorys(tree: Path) -> None:
    same = {
        "lib/systemd/system/edge-recorder.service": "systemd/edge-recorder.service",
        "usr/lib/sysusers.d/edge-recorder.conf": "systemd/sysusers.d/edge-recorder.conf",
        "usr/lib/tmpfiles.d/edge-recorder.conf": "systemd/tmpfiles.d/edge-recorder.conf",
        "etc/edge-recorder/config.toml": "config.example.toml",
        "usr/share/doc/edge-recorder/examples/90-edge-recorder-mic.rules":
            "hardware/udev/90-edge-recorder-mic.rules",
    }  # fmt: skip
    for packaged, source in same.items():
        assert (tree / packaged).read_bytes() == (REPO / source).read_bytes(), packaged
    assert os.readlink(tree / "usr/bin/edge-recorder") == f"/{VENV}/bin/edge-recorder"
    # the rule renames the card: an example for the admin, never active by itself
    assert not (tree / "lib/udev/rules.d").exists()
    assert not (tree / "etc/systemd").exists()  # a unit in /etc would shadow upgrades


def test_nothing_names_the_build_directory(tree: Path) -> None:
    leaked = build.naming(tree, "edge-recorder-deb.")
    assert leaked == []
    assert (tree / VENV / "bin/edge-recorder").read_text().startswith(f"#!/{VENV}/bin/python\n")
    assert os.readlink(tree / VENV / "bin/python3") == "/usr/bin/python3"
    assert f"command = /usr/bin/python3 -m venv /{VENV}" in (tree / VENV / "pyvenv.cfg").read_text()


def test_the_venv_holds_exactly_the_locked_packages(tree: Path) -> None:
    expected = pins("build.txt", "device.txt", "extra-pi.txt", "extra-aws.txt")
    assert frozen(tree) == {**expected, "edge-recorder": "0.1.0"}
    assert not list(
        (tree / VENV).glob("lib/python3*/site-packages/edge_recorder-*/direct_url.json")
    )


def test_the_extracted_venv_runs_on_shipped_bytecode(tree: Path, tmp_path: Path) -> None:
    python = str(tree / VENV / "bin/python")
    pycs = {p: p.stat().st_mtime_ns for p in (tree / VENV).rglob("*.pyc")}
    assert len(pycs) > 1000
    done = subprocess.run(
        [python, "-m", "edge_recorder", "--version"], capture_output=True, text=True
    )
    assert done.returncode == 0 and done.stdout.strip() == "edge-recorder 0.1.0", done.stderr
    wav = tmp_path / "tone.wav"
    make = (
        "import sys, numpy as np, soundfile as sf; t = np.arange(16000 * 2) / 16000; "
        "sf.write(sys.argv[1], 0.3 * np.sin(2 * np.pi * 440 * t), 16000, subtype='PCM_16')"
    )
    subprocess.run([python, "-c", make, str(wav)], check=True)
    done = subprocess.run(
        [python, "-m", "edge_recorder", "analyze", "--json", "--vad", "energy", str(wav)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["duration_s"] == 2.0
    assert report["rms_dbfs"] == pytest.approx(-13.5, abs=0.2)  # a 0.3 sine, through the DSP
    # every module came from a valid shipped .pyc: Python rewrote none and added none
    after = {p: p.stat().st_mtime_ns for p in (tree / VENV).rglob("*.pyc")}
    assert after == pycs


def test_one_package_delivers_to_every_service(tree: Path, tmp_path: Path) -> None:
    """The aws extra is in the package: an AWS service config is never refused for a missing
    extra (the git path's `--extras pi,aws`)."""
    python = str(tree / VENV / "bin/python")
    imports = subprocess.run([python, "-c", "import awscrt.http, botocore.session, lgpio"],
                             capture_output=True, text=True)  # fmt: skip
    assert imports.returncode == 0 or "lgpio" in imports.stderr, imports.stderr  # lgpio: aarch64
    assert "awscrt" not in imports.stderr and "botocore" not in imports.stderr
    config = tmp_path / "aws.toml"
    config.write_text('[uplink]\nservice = "aws-healthscribe"\n')
    done = subprocess.run([python, "-m", "edge_recorder", "check", "--config", str(config)],
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert "optional extra" not in done.stdout + done.stderr, done.stderr
    assert "aws" in done.stdout + done.stderr  # judged as an AWS config, not refused unread


@pytest.fixture
def target(deb: Path, tmp_path: Path) -> Iterator[Path]:
    root = tmp_path / "root"
    root.mkdir()
    dpkg_deb("-x", deb, root)
    yield root
    shutil.rmtree(root, ignore_errors=True)


def maintscript(scripts: Path, root: Path, name: str, *args: str) -> str:
    env = {
        "PATH": os.environ["PATH"],
        "DPKG_ROOT": str(root),
        "DPKG_MAINTSCRIPT_PACKAGE": "edge-recorder",
        "DPKG_MAINTSCRIPT_NAME": name,
    }
    done = subprocess.run(
        ["sh", str(scripts / name), *args], capture_output=True, text=True, env=env, check=False
    )
    assert done.returncode == 0, (name, args, done.stdout, done.stderr)
    return done.stdout + done.stderr


def test_postinst_sets_up_a_root_and_never_replaces_the_spool_key(
    scripts: Path, target: Path
) -> None:
    out = maintscript(scripts, target, "postinst", "configure", "")
    assert "created the spool key" in out
    groups = (target / "etc/group").read_text()
    gid = int(re.search(r"^edge-recorder:x:(\d+):", groups, re.MULTILINE)[1])  # type: ignore[index]
    assert re.search(r"^audio:x:\d+:edge-recorder$", groups, re.MULTILINE)
    assert "edge-recorder:x:" in (target / "etc/passwd").read_text()
    key = target / "etc/credstore/edge-recorder.spool-key"
    assert len(key.read_bytes()) == 32
    assert stat.S_IMODE(key.stat().st_mode) == 0o600 and key.stat().st_uid == 0
    assert stat.S_IMODE((target / "etc/credstore").stat().st_mode) == 0o700
    config = (target / "etc/edge-recorder/config.toml").stat()
    assert stat.S_IMODE(config.st_mode) == 0o640 and (config.st_uid, config.st_gid) == (0, gid)
    assert stat.S_IMODE((target / "var/lib/edge-recorder/spool").stat().st_mode) == 0o700
    wants = target / "etc/systemd/system/multi-user.target.wants/edge-recorder.service"
    assert os.readlink(wants) == "/lib/systemd/system/edge-recorder.service"
    # upgrade: the same key, still enabled
    first = key.read_bytes()
    out = maintscript(scripts, target, "postinst", "configure", "0.1.0")
    assert "created the spool key" not in out
    assert key.read_bytes() == first and wants.is_symlink()


def test_purge_keeps_key_and_state_while_the_spool_holds_audio(scripts: Path, target: Path) -> None:
    maintscript(scripts, target, "postinst", "configure", "")
    custom = target / "srv/spool/segments"
    custom.mkdir(parents=True)
    (target / "etc/edge-recorder/config.toml").write_text('[spool]\ndir = "/srv/spool"\n')
    (custom / "0001.seg").write_bytes(b"audio")
    maintscript(scripts, target, "prerm", "remove")
    maintscript(scripts, target, "postrm", "remove")
    out = maintscript(scripts, target, "postrm", "purge")
    assert "holds undelivered audio" in out
    assert (target / "etc/credstore/edge-recorder.spool-key").exists()
    assert (target / "var/lib/edge-recorder").is_dir()
    # delivered: the next purge removes secrets and state (the spool outside it stays)
    (custom / "0001.seg").unlink()
    maintscript(scripts, target, "postrm", "purge")
    assert not list((target / "etc").glob("credstore/edge-recorder.*"))
    assert not (target / "var/lib/edge-recorder").exists()
    assert not (target / "etc/edge-recorder").exists()
    assert not (
        target / "etc/systemd/system/multi-user.target.wants/edge-recorder.service"
    ).exists()
    assert custom.is_dir()


def test_preinst_refuses_a_system_set_up_by_install_sh(scripts: Path, tmp_path: Path) -> None:
    (tmp_path / "opt/edge-recorder/venvs/1").mkdir(parents=True)
    (tmp_path / "opt/edge-recorder/venv").symlink_to("venvs/1")
    env = {"PATH": os.environ["PATH"], "DPKG_ROOT": str(tmp_path)}
    done = subprocess.run(
        ["sh", str(scripts / "preinst"), "install"], capture_output=True, text=True, env=env
    )
    assert done.returncode == 1 and "systemd/install.sh --uninstall" in done.stderr
