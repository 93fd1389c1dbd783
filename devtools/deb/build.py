"""Build `edge-recorder_<version>_<arch>.deb`: the device venv in /opt/edge-recorder, exactly as
locked, with the systemd unit, sysusers.d/tmpfiles.d entries and the config as a conffile.

    python -m devtools.deb.build --out dist/ [--arch ARCH]

Why plain `dpkg-deb` and this script, not dh-virtualenv or nfpm: dpkg-deb is Debian's own tool,
on every build machine already (no extra build dependency, nothing to pin); the venv recipe
already exists in systemd/install.sh (hash-checked pip from devtools/requirements/, no build
isolation), and this repeats it step by step; dh-virtualenv needs a whole debian/ source package
with debhelper and has seen few releases in years, nfpm would be one more downloaded binary and
still needs the venv built and relocated by hand. What dh-virtualenv would add, this does too:
the venv is built at a staging path, every text file naming that path is rewritten to
/opt/edge-recorder/venv, and the build fails if any file still names it.

The venv is made with Debian's /usr/bin/python3 (never the developer's pyenv Python): the .deb
depends on `python3 (>= 3.X), python3 (<< 3.X+1)` because a venv is bound to its minor version.
Sources without wheels (pyalsaaudio, systemd-python) are compiled here, so the device needs no
compiler and no -dev headers; the shared libraries the venv's ELF files need are found with
`objdump -p` (NEEDED), `ldconfig -p` and `dpkg -S`, versioned from the owners' shlibs files like
dpkg-shlibdeps does (libraries bundled inside wheels, e.g. numpy.libs, are not dependencies).

Byte-code is compiled here and shipped (owned by dpkg, removed with the package), with paths as
on the device and `checked-hash` invalidation: the unit's ProtectSystem=strict makes /opt
read-only, so Python could never cache it there, and a Pi would compile every module on each
start; hash checking keeps the files valid whatever mtimes dpkg or a reproducible build sets.

The build runs on a machine of the target architecture (`--arch` must equal
`dpkg --print-architecture`): arm64 is built in an arm64 system or chroot, not cross-built.
The maintainer scripts are below: they follow debhelper's snippets (deb-systemd-helper) and
systemd/install.sh's rules (spool key created once, never replaced; no purge of the key or the
state while the spool holds undelivered audio).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
from collections.abc import Iterable, Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
LOCK_DIR = REPO / "devtools" / "requirements"
LOCK_FILES = ("build.txt", "device.txt")
# The extras the package carries: `pi` (the lgpio pin factory) and `aws` (the AWS services'
# CRT and botocore, +35 MB on disk, loaded only when uplink.service is an AWS one), so that one
# package delivers to every service. `onnx` stays out: it is an alternative backend for the
# same Silero network the default numpy engine runs (+60 MB); `--extras` changes the set.
DEFAULT_EXTRAS = ("pi", "aws")
PACKAGE = "edge-recorder"
# Where every path in the venv points: a link (made by postinst) to the release in use.
VENV = "/opt/edge-recorder/venv"
# What dpkg owns: the release this package ships. A gated upgrade keeps the old one beside it.
RELEASE = "/opt/edge-recorder/release"
SYSTEM_PYTHON = "/usr/bin/python3"
# Loaded at run time without an ELF NEEDED entry (opuslib/ctypes, the journal, ALSA's plugins
# and TLS roots), so the library scan cannot see them.
BASE_DEPENDS = ("libasound2", "libsystemd0", "libopus0", "systemd", "ca-certificates")
RECOMMENDS = ("alsa-utils", "libasound2-plugins")
# (source in the repository, path in the package, mode)
FILES = (
    ("systemd/edge-recorder.service", "lib/systemd/system/edge-recorder.service", 0o644),
    ("systemd/sysusers.d/edge-recorder.conf", "usr/lib/sysusers.d/edge-recorder.conf", 0o644),
    ("systemd/tmpfiles.d/edge-recorder.conf", "usr/lib/tmpfiles.d/edge-recorder.conf", 0o644),
    ("config.example.toml", "etc/edge-recorder/config.toml", 0o644),
    # Examples, not active: the udev rule renames the card to "edgemic", which the profiles'
    # default device names do not use; the admin keeps the line for the array and copies it.
    ("hardware/udev/90-edge-recorder-mic.rules", "usr/share/doc/edge-recorder/examples/", 0o644),
    ("hardware/alsa/dsnoop.conf", "usr/share/doc/edge-recorder/examples/", 0o644),
    ("hardware/alsa/plug.conf", "usr/share/doc/edge-recorder/examples/", 0o644),
)
CONFFILES = ("/etc/edge-recorder/config.toml",)
PIP_ENV = {
    "PIP_DISABLE_PIP_VERSION_CHECK": "1",
    "PIP_NO_INPUT": "1",
    "PYTHONDONTWRITEBYTECODE": "1",
}

# The maintainer scripts (POSIX sh, set -e, honouring DPKG_ROOT) live beside this module in
# maintscripts/, so they read, diff and `sh -n` as the shell they are.
MAINTSCRIPTS = Path(__file__).resolve().parent / "maintscripts"
SCRIPTS = {
    name: (MAINTSCRIPTS / name).read_text(encoding="utf-8")
    for name in ("preinst", "postinst", "prerm", "postrm")
}


class BuildError(RuntimeError):
    """The package cannot be built as asked (wrong machine, a library without a package...)."""


def say(message: str) -> None:
    print(f"deb: {message}", file=sys.stderr, flush=True)


def run(*args: str | Path, env: dict[str, str] | None = None) -> str:
    """Run a command; its stdout, or BuildError with its output when it fails."""
    done = subprocess.run(
        [str(a) for a in args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        check=False,
    )
    if done.returncode != 0:
        raise BuildError(f"{' '.join(map(str, args))} failed:\n{done.stdout}{done.stderr}")
    return done.stdout


def project_version() -> str:
    with (REPO / "pyproject.toml").open("rb") as f:
        return str(tomllib.load(f)["project"]["version"])


def host_arch() -> str:
    return run("dpkg", "--print-architecture").strip()


def lock_files(extras: tuple[str, ...]) -> list[str]:
    """The exports the venv is installed from, build tools first."""
    for extra in extras:
        if not (LOCK_DIR / f"extra-{extra}.txt").exists():
            raise BuildError(f"no locked extra {extra!r} (devtools/requirements/extra-*.txt)")
    return [*LOCK_FILES, *(f"extra-{extra}.txt" for extra in extras)]


def build_venv(venv: Path, work: Path, extras: tuple[str, ...]) -> None:
    """The venv of systemd/install.sh: locked build tools, then the locked device set without
    dependency resolution, then the project (from a copy, non-editable): all hash-checked."""
    run(SYSTEM_PYTHON, "-m", "venv", venv, env=PIP_ENV)
    pip = (venv / "bin" / "python", "-m", "pip", "install", "-q", "--no-compile")
    run(*pip, "--require-hashes", "-r", LOCK_DIR / "build.txt", env=PIP_ENV)
    locked = [a for name in lock_files(extras)[1:] for a in ("-r", str(LOCK_DIR / name))]
    run(*pip, "--require-hashes", "--no-deps", "--no-build-isolation", *locked, env=PIP_ENV)
    # A copy of the sources, so the build leaves nothing in the checkout (build/, egg-info).
    source = work / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, source / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(REPO / "edge_recorder", source / "edge_recorder", ignore=ignore)
    run(*pip, "--no-deps", "--no-build-isolation", source, env=PIP_ENV)
    run(venv / "bin" / "python", "-m", "pip", "check", env=PIP_ENV)
    # pip records the temporary source as the origin; the device got it from the package.
    for direct_url in venv.glob("lib/python3*/site-packages/edge_recorder-*/direct_url.json"):
        direct_url.unlink()
        record = direct_url.with_name("RECORD")
        lines = record.read_text().splitlines(keepends=True)
        record.write_text(
            "".join(x for x in lines if not x.split(",")[0].endswith("direct_url.json"))
        )


def files_under(root: Path) -> Iterator[Path]:
    """Every regular file below root (symlinks are not followed)."""
    for dirpath, _dirs, names in os.walk(root):
        for name in names:
            path = Path(dirpath) / name
            if path.is_file() and not path.is_symlink():
                yield path


def relocate(venv: Path, target: str) -> int:
    """Rewrite the staging path to the installed one in every text file (shebangs, activate
    scripts, pyvenv.cfg); a binary file naming it is an error. Returns the files rewritten."""
    old, new = str(venv).encode(), target.encode()
    rewritten = 0
    for path in files_under(venv):
        data = path.read_bytes()
        if old not in data:
            continue
        if b"\0" in data:
            raise BuildError(f"binary file names the staging path: {path}")
        path.write_bytes(data.replace(old, new))
        rewritten += 1
    return rewritten


def compile_bytecode(venv: Path) -> None:
    """Drop stray caches, then compile everything with device paths and checked hashes."""
    for cache in sorted(venv.rglob("__pycache__"), reverse=True):
        shutil.rmtree(cache)
    run(
        venv / "bin" / "python", "-m", "compileall", "-q", "-j0", "-s", venv, "-p", VENV,
        "--invalidation-mode", "checked-hash", venv / "lib",
    )  # fmt: skip


def naming(root: Path, needle: str) -> list[Path]:
    """The files below root whose bytes contain needle."""
    return [path for path in files_under(root) if needle.encode() in path.read_bytes()]


def _is_elf(path: Path) -> bool:
    with path.open("rb") as f:
        return f.read(4) == b"\x7fELF"


def needed_libraries(venv: Path) -> set[str]:
    """Sonames the venv's ELF files need that are not bundled in the venv (wheel .libs dirs)."""
    elves = [path for path in files_under(venv) if _is_elf(path)]
    bundled = {path.name for path in elves}
    needed: set[str] = set()
    for start in range(0, len(elves), 200):
        out = run("objdump", "-p", *elves[start : start + 200])
        needed.update(re.findall(r"^\s+NEEDED\s+(\S+)$", out, flags=re.MULTILINE))
    return needed - bundled


def _ldconfig() -> dict[str, list[str]]:
    cache: dict[str, list[str]] = {}
    for line in run("/sbin/ldconfig", "-p").splitlines():
        found = re.match(r"^\s+(\S+) \(([^)]*)\) => (\S+)$", line)
        if found:
            cache.setdefault(found[1], []).append(found[3])
    return cache


def _owner(path: str) -> str | None:
    """The package shipping path (tried as given, resolved, and across the /usr merge)."""
    candidates = [path, os.path.realpath(path)]
    candidates += [
        c.removeprefix("/usr") if c.startswith("/usr/") else "/usr" + c for c in candidates
    ]
    for candidate in candidates:
        done = subprocess.run(["dpkg", "-S", candidate], capture_output=True, text=True)
        if done.returncode == 0:
            return done.stdout.split(":")[0].split(",")[0].strip()
    return None


def _shlibs_depends(package: str, arch: str, soname: str) -> str:
    """The dependency the owner's shlibs file declares for soname, else the bare package."""
    found = re.match(r"^(.+)\.so\.(.+)$", soname) or re.match(r"^(.+)-([0-9.]+)\.so$", soname)
    for name in (f"{package}:{arch}.shlibs", f"{package}.shlibs"):
        shlibs = Path("/var/lib/dpkg/info") / name
        if found and shlibs.exists():
            for line in shlibs.read_text().splitlines():
                fields = line.split(None, 2)
                if len(fields) == 3 and (fields[0], fields[1]) == (found[1], found[2]):
                    return fields[2].strip()
    return package


def shlib_depends(venv: Path, arch: str) -> list[str]:
    """Debian dependencies for the shared libraries the venv links against."""
    multiarch = run(
        SYSTEM_PYTHON, "-c", "import sysconfig; print(sysconfig.get_config_var('MULTIARCH'))"
    )
    cache = _ldconfig()
    depends: set[str] = set()
    missing: list[str] = []
    for soname in sorted(needed_libraries(venv)):
        paths = cache.get(soname, [])
        paths = [p for p in paths if f"/{multiarch.strip()}/" in p] or paths
        owner = _owner(paths[0]) if paths else None
        if owner is None:
            missing.append(soname)
        else:
            depends.add(_shlibs_depends(owner, arch, soname))
    if missing:
        raise BuildError(f"no installed package provides {', '.join(missing)}")
    return sorted(depends)


def merge_depends(entries: Iterable[str]) -> list[str]:
    """Drop a bare `pkg` where a versioned `pkg (...)` is listed; keep the order, no repeats."""
    entries = list(dict.fromkeys(entries))
    versioned = {e.split()[0] for e in entries if "(" in e and "|" not in e}
    return [e for e in entries if "(" in e or "|" in e or e not in versioned]


def python_depends() -> list[str]:
    out = run(SYSTEM_PYTHON, "-c", "import sys; print(*sys.version_info[:2])").split()
    major, minor = int(out[0]), int(out[1])
    return [f"python3 (>= {major}.{minor})", f"python3 (<< {major}.{minor + 1})"]


def control(version: str, arch: str, depends: list[str], size_kib: int) -> str:
    fields = {
        "Package": PACKAGE,
        "Version": version,
        "Architecture": arch,
        "Maintainer": "edge-recorder maintainers <edge-recorder@example.invalid>",
        "Installed-Size": str(size_kib),
        "Depends": ", ".join(depends),
        "Recommends": ", ".join(RECOMMENDS),
        "Section": "sound",
        "Priority": "optional",
        "Homepage": "https://example.invalid/edge-recorder",
        "Description": "Edge audio recorder for clinical ambient documentation\n"
        " Captures exam-room audio on a Raspberry Pi, spools it encrypted and delivers it to\n"
        " the ambient documentation service. The Python environment in /opt/edge-recorder\n"
        " holds exactly the project's locked, hash-checked dependencies.",
    }
    return "".join(f"{key}: {value}\n" for key, value in fields.items())


def stage(staging: Path, arch: str, version: str, work: Path, extras: tuple[str, ...]) -> None:
    """Fill the staging tree and its DEBIAN/ directory."""
    venv = staging / RELEASE.lstrip("/")
    say(f"venv with {SYSTEM_PYTHON} at {venv}")
    build_venv(venv, work, extras)
    say(f"relocated {relocate(venv, VENV)} files to {VENV}")
    compile_bytecode(venv)
    for source, target, mode in FILES:
        dest = staging / target
        if target.endswith("/"):
            dest = dest / Path(source).name
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(REPO / source, dest)
        dest.chmod(mode)
    (staging / "usr/bin").mkdir(parents=True, exist_ok=True)
    (staging / "usr/bin/edge-recorder").symlink_to(f"{VENV}/bin/edge-recorder")
    leaks = naming(staging, str(staging))
    if leaks:
        raise BuildError(f"files still name the staging path: {leaks[:5]}")
    depends = merge_depends([*python_depends(), *BASE_DEPENDS, *shlib_depends(venv, arch)])
    bad = [d for d in depends if re.search(r"-dev\b|\b(gcc|g\+\+|clang|cpp)\b", d)]
    if bad:
        raise BuildError(f"build-only packages in Depends: {bad}")
    size = sum((p.lstat().st_size + 1023) // 1024 for p in staging.rglob("*"))
    debian = staging / "DEBIAN"
    debian.mkdir(mode=0o755)
    (debian / "control").write_text(control(version, arch, depends, size))
    (debian / "conffiles").write_text("".join(f"{c}\n" for c in CONFFILES))
    for name, text in SCRIPTS.items():
        (debian / name).write_text(text)
        (debian / name).chmod(0o755)


def build(
    out: Path,
    arch: str | None = None,
    compression: str = "xz",
    extras: tuple[str, ...] = DEFAULT_EXTRAS,
) -> Path:
    """Build the .deb into out; returns its path. xz is the smallest (60 s for the venv on two
    cores); zstd takes 2 s for a 40 % larger file (dpkg >= 1.21.18, i.e. bookworm)."""
    host = host_arch()
    arch = arch or host
    if arch != host:
        raise BuildError(f"--arch {arch} on an {host} machine: build it in an {arch} system")
    version = project_version()
    out.mkdir(parents=True, exist_ok=True)
    deb = out / f"{PACKAGE}_{version}_{arch}.deb"
    old_umask = os.umask(0o022)
    try:
        with tempfile.TemporaryDirectory(prefix="edge-recorder-deb.") as tmp:
            work = Path(tmp)
            staging = work / "root"
            staging.mkdir(mode=0o755)
            stage(staging, arch, version, work, extras)
            say(f"dpkg-deb --build -> {deb}")
            run("dpkg-deb", "--root-owner-group", f"-Z{compression}", "--build", staging, deb)
    finally:
        os.umask(old_umask)
    return deb


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Build the edge-recorder .deb")
    parser.add_argument("--out", type=Path, default=REPO / "dist", help="output directory")
    parser.add_argument("--arch", help="Debian architecture (default: this machine's)")
    parser.add_argument("--compression", choices=("xz", "zstd", "gzip"), default="xz")
    parser.add_argument(
        "--extras", default=",".join(DEFAULT_EXTRAS), help="optional extras in the venv"
    )
    args = parser.parse_args(argv)
    extras = tuple(e.strip() for e in args.extras.split(",") if e.strip())
    try:
        deb = build(args.out, args.arch, args.compression, extras)
    except BuildError as exc:
        say(f"error: {exc}")
        return 1
    say(f"built {deb} ({deb.stat().st_size / 1e6:.1f} MB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
