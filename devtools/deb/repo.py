"""`make repo`: a signed apt repository holding edge-recorder .debs, ready to serve as static
files (any web server, or `file:` for a test).

    python -m devtools.deb.repo --out dist/repo [--key FPR] [--gnupg DIR] dist/*.deb

Layout of --out: `public/` is what a web server serves (dists/, pool/ and the archive's public
key `edge-recorder-archive-keyring.gpg`, the file a device's sources entry names in
`signed-by=`); `reprepro/` is reprepro's own configuration and database (keep it between
releases, never serve it).

Why reprepro, not aptly: it is a Debian package (`apt-get install reprepro`, no extra
download), configured by one small text file, keeps its state in a directory beside the
published tree and has no daemon. aptly's snapshots and mirrors are for managing many upstream
mirrors, which this project does not have. Bookworm's reprepro (5.3.1) keeps one version of
a package per suite: adding a new .deb replaces the old one. A device never needs the old one
from the repository to roll back (the package keeps the release in use until the new one passes
`edge-recorder check`, see the maintainer scripts); to downgrade on purpose, install the older
.deb file (`apt-get install ./edge-recorder_<old>.deb`), which goes through the same gate.

Signing: --key names a secret key in GNUPGHOME (or --gnupg), the site's archive key. Without
one, a throwaway key (ed25519, no passphrase) is generated in --gnupg (default
`<out>/gnupg`) and reused on the next run: good for a test lab, never for a fleet. The
Release file is signed both ways apt reads it (InRelease, Release.gpg).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

SUITE = "bookworm"
COMPONENT = "main"
ARCHITECTURES = ("amd64", "arm64")
KEYRING = "edge-recorder-archive-keyring.gpg"
TEST_KEY_UID = "edge-recorder test archive key (not for production) <archive@example.invalid>"


class RepoError(RuntimeError):
    """The repository cannot be made as asked."""


def say(message: str) -> None:
    print(f"repo: {message}", file=sys.stderr, flush=True)


def run(*args: str | Path, gnupg: Path | None = None) -> str:
    env = dict(os.environ)
    if gnupg is not None:
        env["GNUPGHOME"] = str(gnupg)
    done = subprocess.run(
        [str(a) for a in args], capture_output=True, text=True, env=env, check=False
    )
    if done.returncode != 0:
        raise RepoError(f"{' '.join(map(str, args))} failed:\n{done.stdout}{done.stderr}")
    return done.stdout


def secret_fingerprints(gnupg: Path) -> list[str]:
    """The primary keys' fingerprints (the fpr record right after each sec record)."""
    out = run("gpg", "--batch", "--with-colons", "--list-secret-keys", gnupg=gnupg)
    return re.findall(r"^sec:.*\nfpr:+([0-9A-F]{40}):", out, flags=re.MULTILINE)


def signing_key(gnupg: Path, key: str | None) -> str:
    """The fingerprint to sign with: the one asked for, or the lab key (made once)."""
    gnupg.mkdir(mode=0o700, parents=True, exist_ok=True)
    if key:
        run("gpg", "--batch", "--list-secret-keys", key, gnupg=gnupg)
        return key
    found = secret_fingerprints(gnupg)
    if found:
        return found[0]
    say(f"no --key: generating a throwaway signing key in {gnupg} (for tests, not a fleet)")
    run(
        "gpg", "--batch", "--passphrase", "", "--quick-generate-key", TEST_KEY_UID,
        "ed25519", "sign", "never", gnupg=gnupg,
    )  # fmt: skip
    return secret_fingerprints(gnupg)[0]


def distributions(key: str) -> str:
    return (
        "Origin: edge-recorder\n"
        "Label: edge-recorder\n"
        f"Codename: {SUITE}\n"
        f"Architectures: {' '.join(ARCHITECTURES)}\n"
        f"Components: {COMPONENT}\n"
        "Description: edge-recorder device packages\n"
        f"SignWith: {key}\n"
    )


def deb_version(deb: Path) -> tuple[str, str, str]:
    out = run("dpkg-deb", "--show", "--showformat=${Package} ${Version} ${Architecture}", deb)
    package, version, arch = out.split()
    return package, version, arch


def make_repo(out: Path, debs: list[Path], key: str | None, gnupg: Path | None) -> Path:
    """Add debs (in the order given) to the repository in out; returns the public tree."""
    if shutil.which("reprepro") is None:
        raise RepoError("reprepro is not installed (apt-get install reprepro; `make` does it)")
    gnupg = (gnupg or out / "gnupg").resolve()
    fingerprint = signing_key(gnupg, key)
    base, public = out / "reprepro", out / "public"
    (base / "conf").mkdir(parents=True, exist_ok=True)
    (base / "conf" / "distributions").write_text(distributions(fingerprint))
    (base / "conf" / "options").write_text(f"outdir {public.resolve()}\n")
    reprepro = ("reprepro", "--basedir", base.resolve(), "--silent")
    for deb in debs:
        package, version, arch = deb_version(deb)
        if arch not in ARCHITECTURES:
            raise RepoError(f"{deb.name}: architecture {arch} is not one of {ARCHITECTURES}")
        say(f"adding {package} {version} ({arch})")
        run(*reprepro, "includedeb", SUITE, deb.resolve(), gnupg=gnupg)
    run(*reprepro, "export", SUITE, gnupg=gnupg)
    keyring = public / KEYRING
    keyring.write_bytes(
        subprocess.run(
            ["gpg", "--batch", "--export", fingerprint],
            capture_output=True, check=True, env={**os.environ, "GNUPGHOME": str(gnupg)},
        ).stdout
    )  # fmt: skip
    return public


def sources_entry(url: str) -> str:
    """The deb822 sources file a device uses (/etc/apt/sources.list.d/edge-recorder.sources)."""
    return (
        "Types: deb\n"
        f"URIs: {url}\n"
        f"Suites: {SUITE}\n"
        f"Components: {COMPONENT}\n"
        f"Signed-By: /etc/apt/keyrings/{KEYRING}\n"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Make the signed edge-recorder apt repository")
    parser.add_argument("debs", nargs="+", type=Path, help=".deb files to add, oldest first")
    parser.add_argument("--out", type=Path, default=Path("dist/repo"))
    parser.add_argument("--key", help="signing key (fingerprint) in the GnuPG home")
    parser.add_argument("--gnupg", type=Path, help="GnuPG home (default: <out>/gnupg)")
    args = parser.parse_args(argv)
    try:
        public = make_repo(args.out, args.debs, args.key, args.gnupg)
    except RepoError as exc:
        say(f"error: {exc}")
        return 1
    say(f"published {public.resolve()}; serve it, copy {KEYRING} to a device's")
    say("/etc/apt/keyrings/ and add /etc/apt/sources.list.d/edge-recorder.sources:")
    print(sources_entry(f"file:{public.resolve()}"), end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
