"""`make repo` and the upgrade path, with the real tools: reprepro publishes and signs, apt
(with its own state and config, no system source) fetches and checks the signature with
`signed-by=`, and dpkg installs into a temporary root (`--root`, maintainer scripts without a
chroot, as dpkg runs them for DPKG_ROOT). The Debian dependencies (python3, libasound2, ...)
are the host's, so dpkg is told to ignore them: the dependency list itself is test_deb's.

Versions: the built .deb is 0.1.0; 0.1.0~rc1 and 0.1.2 are the same contents repacked under
another version, and 0.1.1 is a release whose `edge-recorder check` rejects every config (a
regression, made by editing check.py in the repacked tree). What runs where a service restart
would is `<root>/opt/edge-recorder/venv`: the gate keeps it on the old release."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.install.conftest import REGRESSION, sh

pytestmark = pytest.mark.timeout(900)

REPO = Path(__file__).resolve().parents[3]


class Repository:
    """`python -m devtools.deb.repo` into one directory (its key kept between releases)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def publish(self, *debs: Path) -> Path:
        done = sh(sys.executable, "-m", "devtools.deb.repo", "--out", self.path, *debs, cwd=REPO)
        assert "Signed-By: /etc/apt/keyrings/edge-recorder-archive-keyring.gpg" in done.stdout
        return self.path / "public"


class Apt:
    """apt-get with its own config, state and sources: the host's apt setup is never read."""

    def __init__(self, path: Path, public: Path, keyring: Path) -> None:
        self.path = path
        for sub in ("state/lists/partial", "cache/archives/partial", "etc/apt.conf.d",
                    "etc/sources.list.d", "etc/trusted.gpg.d", "etc/preferences.d"):  # fmt: skip
            (path / sub).mkdir(parents=True, exist_ok=True)
        (path / "status").touch()
        (path / "etc/sources.list.d/edge-recorder.sources").write_text(
            f"Types: deb\nURIs: file:{public}\nSuites: bookworm\nComponents: main\n"
            f"Signed-By: {keyring}\n"
        )
        settings = {
            "Dir::State": path / "state", "Dir::State::status": path / "status",
            "Dir::Cache": path / "cache", "Dir::Etc": path / "etc",
            "Dir::Etc::sourcelist": path / "etc/sources.list",
            "Dir::Etc::sourceparts": path / "etc/sources.list.d",
            "Dir::Etc::trusted": path / "etc/trusted.gpg",
            "Dir::Etc::trustedparts": path / "etc/trusted.gpg.d",
            "APT::Sandbox::User": "root", "Debug::NoLocking": "true",
        }  # fmt: skip
        (path / "apt.conf").write_text("".join(f'{k} "{v}";\n' for k, v in settings.items()))

    def __call__(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "APT_CONFIG": str(self.path / "apt.conf")}
        return sh(*args, check=check, env=env, cwd=self.path)

    def fetch(self, version: str) -> Path:
        self("apt-get", "update", "-q")
        self("apt-get", "download", "-q", f"edge-recorder={version}")
        (deb,) = self.path.glob(f"edge-recorder_{version}_*.deb")
        return deb


class Root:
    """A temporary system root that dpkg installs into."""

    def __init__(self, path: Path) -> None:
        self.path = path
        for sub in ("var/lib/dpkg/updates", "var/lib/dpkg/info", "etc"):
            (path / sub).mkdir(parents=True, exist_ok=True)
        for name in ("status", "available"):
            (path / "var/lib/dpkg" / name).touch()

    def dpkg(self, *args: str | Path) -> subprocess.CompletedProcess[str]:
        return sh("dpkg", f"--root={self.path}", "--force-script-chrootless", "--force-depends",
                  "--log=/dev/null", *args, check=False)  # fmt: skip

    def status(self) -> tuple[str, str]:
        out = sh("dpkg-query", f"--root={self.path}", "-W", "-f=${Version} ${Status}",
                 "edge-recorder").stdout  # fmt: skip
        version, _, status = out.partition(" ")
        return version, status

    @property
    def venv(self) -> Path:
        return self.path / "opt/edge-recorder/venv"

    def check(self) -> subprocess.CompletedProcess[str]:
        """`edge-recorder check` as the unit would run it after a restart."""
        config = self.path / "etc/edge-recorder/config.toml"
        return sh(self.venv / "bin/python", "-m", "edge_recorder", "check", "--config", config,
                  check=False)  # fmt: skip

    def configure(self) -> None:
        """The site's config (a valid one: check passes) and some undelivered audio."""
        (self.path / "etc/edge-recorder/config.toml").write_text(
            '[device]\nid = "exam-7"\nlocation = "Clinic B, room 7"\n'
            '[uplink]\nservice = "corti"\n'
            '[corti]\nclient_id = "dev"\ntenant = "base"\n'
            'auth_url = "http://127.0.0.1:9/auth"\napi_url = "http://127.0.0.1:9/api"\n'
            f'[spool]\ndir = "{self.path}/var/lib/edge-recorder/spool"\n'
            f'key_file = "{self.path}/etc/credstore/edge-recorder.spool-key"\n'
        )
        segment = self.path / "var/lib/edge-recorder/spool/segments/0001.seg"
        segment.parent.mkdir(parents=True, exist_ok=True)
        segment.write_bytes(os.urandom(4096))

    def kept(self) -> dict[str, bytes]:
        """What an upgrade must never change: the spool key, the config and the spool."""
        files = [self.path / "etc/credstore/edge-recorder.spool-key",
                 self.path / "etc/edge-recorder/config.toml",
                 *sorted((self.path / "var/lib/edge-recorder/spool").rglob("*.seg"))]  # fmt: skip
        return {str(p.relative_to(self.path)): p.read_bytes() for p in files}


def test_an_upgrade_from_the_signed_repository_keeps_spool_key_and_config(
    releases: dict[str, Path], tmp_path: Path
) -> None:
    repo = Repository(tmp_path / "repo")
    public = repo.publish(releases["0.1.0~rc1"])
    keyring = tmp_path / "keyrings/edge-recorder-archive-keyring.gpg"
    keyring.parent.mkdir()
    keyring.write_bytes((public / "edge-recorder-archive-keyring.gpg").read_bytes())
    apt = Apt(tmp_path / "apt", public, keyring)
    root = Root(tmp_path / "root")

    first = root.dpkg("-i", apt.fetch("0.1.0~rc1"))
    assert first.returncode == 0, first.stderr
    assert "created the spool key" in first.stdout
    assert root.status() == ("0.1.0~rc1", "install ok installed")
    assert os.readlink(root.venv) == "release"
    root.configure()
    assert root.check().returncode == 0
    before = root.kept()

    repo.publish(releases["0.1.0"])  # the next release, same archive key
    policy = apt("apt-cache", "policy", "edge-recorder").stdout
    assert "Candidate: 0.1.0~rc1" in policy  # not yet fetched
    upgrade = root.dpkg("-i", apt.fetch("0.1.0"))
    assert upgrade.returncode == 0, upgrade.stderr
    assert "Candidate: 0.1.0\n" in apt("apt-cache", "policy", "edge-recorder").stdout
    assert root.status() == ("0.1.0", "install ok installed")
    assert root.kept() == before
    assert "created the spool key" not in upgrade.stdout
    assert os.readlink(root.venv) == "release"
    assert not (root.path / "opt/edge-recorder/previous").exists()
    assert root.check().returncode == 0


def test_apt_refuses_the_repository_signed_with_another_key(
    releases: dict[str, Path], tmp_path: Path
) -> None:
    public = Repository(tmp_path / "repo").publish(releases["0.1.0"])
    stranger = Repository(tmp_path / "other").publish(releases["0.1.0"])
    apt = Apt(tmp_path / "apt", public, stranger / "edge-recorder-archive-keyring.gpg")
    done = apt("apt-get", "update", "-q", check=False)
    assert "NO_PUBKEY" in done.stdout + done.stderr or "not signed" in done.stderr, done
    assert apt("apt-cache", "policy", "edge-recorder").stdout == ""  # apt knows no such package
    # and a Release file changed after signing: the signature no longer matches
    good = Apt(tmp_path / "apt2", public, public / "edge-recorder-archive-keyring.gpg")
    inrelease = public / "dists/bookworm/InRelease"
    inrelease.write_text(inrelease.read_text().replace("Label: edge-recorder", "Label: evil"))
    (public / "dists/bookworm/Release.gpg").unlink()
    done = good("apt-get", "update", "-q", check=False)
    assert "BADSIG" in done.stdout + done.stderr or "not valid" in done.stderr, done
    assert good("apt-cache", "policy", "edge-recorder").stdout == ""


def test_a_release_that_fails_check_leaves_the_old_one_in_use(
    releases: dict[str, Path], tmp_path: Path
) -> None:
    root = Root(tmp_path / "root")
    assert root.dpkg("-i", releases["0.1.0"]).returncode == 0
    root.configure()
    before = root.kept()
    # A process of the running version: it imports lazily after the upgrade, as the daemon does.
    probe = subprocess.Popen(
        [str(root.venv / "bin/python"), "-c",
         "import sys, edge_recorder; print('ready', flush=True); sys.stdin.readline(); "
         "import edge_recorder.commands.check as c; "
         f"print(open(c.__file__).read().count({REGRESSION!r}), flush=True)"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert probe.stdout is not None and probe.stdin is not None
        assert probe.stdout.readline() == "ready\n"

        bad = root.dpkg("-i", releases["0.1.1"])
        assert bad.returncode != 0
        assert "NOT switching to the new version" in bad.stderr
        assert REGRESSION in bad.stderr  # what the new version's check said
        assert "dpkg --configure -a" in bad.stderr
        assert root.status() == ("0.1.1", "install ok half-configured")
        assert os.readlink(root.venv) == "previous"
        assert root.check().returncode == 0  # a restart now would run 0.1.0, which works
        probe.stdin.write("go\n")
        probe.stdin.flush()
        assert probe.stdout.readline() == "0\n"  # the running process still loads 0.1.0
    finally:
        probe.kill()
        probe.wait()
    assert root.kept() == before

    # Retrying changes nothing while the release is still broken...
    retry = root.dpkg("--configure", "-a")
    assert retry.returncode != 0 and os.readlink(root.venv) == "previous"
    # ...and the next good release (or a downgrade) goes through the same gate and is taken.
    fixed = root.dpkg("-i", releases["0.1.2"])
    assert fixed.returncode == 0, fixed.stderr
    assert root.status() == ("0.1.2", "install ok installed")
    assert os.readlink(root.venv) == "release"
    assert not (root.path / "opt/edge-recorder/previous").exists()
    assert root.kept() == before
    down = root.dpkg("-i", releases["0.1.0~rc1"])
    assert down.returncode == 0, down.stderr
    assert "downgrading" in down.stderr.lower() + down.stdout.lower()
    assert root.status() == ("0.1.0~rc1", "install ok installed")
    assert root.check().returncode == 0 and root.kept() == before


def test_a_first_install_with_the_example_config_is_not_gated(
    releases: dict[str, Path], tmp_path: Path
) -> None:
    """The example config cannot deliver (check exits 78): a first install has no old version
    to keep, and an upgrade of a device that never passed check has none that works."""
    root = Root(tmp_path / "root")
    assert root.dpkg("-i", releases["0.1.0~rc1"]).returncode == 0
    assert root.check().returncode == 78
    upgrade = root.dpkg("-i", releases["0.1.1"])
    assert upgrade.returncode == 0, upgrade.stderr
    assert "fails 'edge-recorder check' on the old and the new version" in upgrade.stderr
    assert os.readlink(root.venv) == "release"


def test_removing_the_package_removes_the_link_and_any_kept_release(
    releases: dict[str, Path], tmp_path: Path
) -> None:
    root = Root(tmp_path / "root")
    assert root.dpkg("-i", releases["0.1.0"]).returncode == 0
    root.configure()
    assert root.dpkg("-i", releases["0.1.1"]).returncode != 0  # 0.1.0 kept as previous
    removed = root.dpkg("--remove", "edge-recorder")
    assert removed.returncode == 0, removed.stderr
    assert not (root.path / "opt/edge-recorder").exists()
    assert (root.path / "etc/credstore/edge-recorder.spool-key").exists()  # purge decides
