"""Install size per install set and machine, from the lock (downloads and unpacked wheels).

What a Pi downloads and keeps for the default device install (`devtools/requirements/
device.txt`) and for each optional extra, measured for aarch64 (the device) and x86_64 without
owning an aarch64 machine: pip downloads exactly the locked wheels for that platform (hash
checked), and each wheel's unpacked size is what it occupies in the venv before byte-code
compilation (pip's .pyc files add about a third on top). The source-only packages (no wheels in
the lock: they build on the device) are counted at the size of this machine's build of them.
The pip cache makes re-runs cheap; the first run downloads (about 100 MB).
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import subprocess
import sys
import tempfile
import tomllib
import zipfile
from importlib import metadata
from pathlib import Path
from typing import Any

from devtools.lockfile import blocks

ROOT = Path(__file__).resolve().parent.parent
LOCK_DIR = ROOT / "devtools" / "requirements"
MB = 1_000_000
PLATFORMS = {
    machine: [f"manylinux_2_{glibc}_{machine}" for glibc in (36, 34, 28, 17)]
    + [f"manylinux2014_{machine}", f"linux_{machine}"]
    for machine in ("aarch64", "x86_64")
}
#: Debian 12 (bookworm) ships CPython 3.11: the Pi's interpreter.
PYTHON = "3.11"
#: The venv of the default device install before the lock split out the extras (2026-11).
BEFORE_MB = 286.0
BEFORE_DOWNLOAD_MB = 83.0


def source_only() -> set[str]:
    """Locked packages with no wheel at all (built on the device from the sdist)."""
    lock = tomllib.loads((ROOT / "uv.lock").read_text())
    return {p["name"] for p in lock["package"] if "sdist" in p and not p.get("wheels")}


def _requirement_blocks(path: Path, skip: set[str], machine: str) -> str:
    """The file's requirements minus `skip`, with markers made to select `machine`: pip
    evaluates markers against the host, not against --platform."""
    text = path.read_text()
    host = platform.machine()
    if machine != host:
        text = (
            text.replace(f"'{machine}'", "'\0'")
            .replace(f"'{host}'", f"'{machine}'")
            .replace("'\0'", f"'{host}'")
        )
    keep = [block for name, block in blocks(text).items() if name not in skip]
    return "\n".join(keep) + "\n"


def built_size(name: str) -> int:
    """Bytes this machine's build of a source-only package occupies (its RECORD)."""
    dist = metadata.distribution(name)
    return sum(int(f.size or 0) for f in dist.files or [] if not str(f).endswith(".pyc"))


def measure_set(files: list[Path], machine: str) -> dict[str, Any]:
    skip = source_only()
    with tempfile.TemporaryDirectory() as tmp:
        reqs = Path(tmp) / "reqs.txt"
        reqs.write_text("".join(_requirement_blocks(f, skip, machine) for f in files))
        platform_args = [arg for tag in PLATFORMS[machine] for arg in ("--platform", tag)]
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "-q", "--require-hashes", "--no-deps",
             "--only-binary=:all:", *platform_args, "--python-version", PYTHON,
             "--implementation", "cp", "-d", str(Path(tmp) / "wheels"), "-r", str(reqs)],
            check=True, capture_output=True, text=True,
        )  # fmt: skip
        wheels = sorted((Path(tmp) / "wheels").glob("*.whl"))
        download = sum(w.stat().st_size for w in wheels)
        unpacked = {}
        for wheel in wheels:
            with zipfile.ZipFile(wheel) as archive:
                unpacked[wheel.name.split("-")[0]] = sum(i.file_size for i in archive.infolist())
    listed = {name for f in files for name in blocks(f.read_text())}
    built = {name: built_size(name) for name in sorted(skip & listed)}
    total = sum(unpacked.values()) + sum(built.values())
    largest = sorted(unpacked.items(), key=lambda kv: -kv[1])[:4]
    return {
        "machine": machine,
        "packages": len(wheels) + len(built),
        "download_mb": round(download / MB, 1),
        "installed_mb": round(total / MB, 1),
        "built_on_device": {k: round(v / MB, 2) for k, v in built.items()},
        "largest": {k: round(v / MB, 1) for k, v in largest},
    }


def venv_on_disk() -> dict[str, float]:
    """The default device venv as systemd/install.sh builds it here, with .pyc, pip and
    setuptools: the figure to compare with the unpacked wheels."""
    with tempfile.TemporaryDirectory() as tmp:
        venv = Path(tmp) / "venv"
        python = str(venv / "bin" / "python")
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        for args in (
            ["--require-hashes", "-r", str(LOCK_DIR / "build.txt")],
            ["--require-hashes", "--no-deps", "--no-build-isolation", "-r",
             str(LOCK_DIR / "device.txt")],
        ):  # fmt: skip
            subprocess.run([python, "-m", "pip", "install", "-q", *args], check=True)
        size = sum(f.stat().st_size for f in venv.rglob("*") if f.is_file() and not f.is_symlink())
        tools = sum(
            f.stat().st_size
            for name in ("pip", "setuptools", "wheel", "_distutils_hack")
            for d in venv.glob(f"lib/python*/site-packages/{name}")
            for f in d.rglob("*")
            if f.is_file()
        )
        shutil.rmtree(venv)
    return {"venv_mb": round(size / MB, 1), "build_tools_mb": round(tools / MB, 1)}


def install_sets() -> dict[str, list[Path]]:
    sets = {"device (default)": [LOCK_DIR / "device.txt"]}
    for extra in sorted(LOCK_DIR.glob("extra-*.txt")):
        name = extra.stem.removeprefix("extra-")
        sets[f"device + [{name}]"] = [LOCK_DIR / "device.txt", extra]
    return sets


def run(quick: bool = False) -> dict[str, Any]:
    """The `benchmarks/run.py` table: each install set on each machine."""
    rows, detail = [], []
    machines = ["aarch64"] if quick else ["aarch64", "x86_64"]
    for label, files in install_sets().items():
        for machine in machines:
            r = measure_set(files, machine)
            detail.append({"set": label, **r})
            top = ", ".join(f"{k} {v}" for k, v in r["largest"].items())
            rows.append([label, machine, r["packages"], r["download_mb"], r["installed_mb"], top])
    default = next(
        d for d in detail if d["set"] == "device (default)" and d["machine"] == "aarch64"
    )
    here = next(
        d for d in detail if d["set"] == "device (default)" and d["machine"] == platform.machine()
    ) if not quick else None  # fmt: skip
    disk = venv_on_disk()
    # On disk = unpacked wheels + .pyc + pip/setuptools; the overhead is measured here and
    # added to the aarch64 wheels (the same files, other binaries).
    overhead = disk["venv_mb"] - here["installed_mb"] if here else 0.0
    estimate = round(default["installed_mb"] + overhead, 1)
    detail.append({"venv_on_disk_here": disk, "aarch64_venv_estimate_mb": estimate})
    return {
        "title": f"Install size from the lock (CPython {PYTHON}, MB = 10^6 bytes, unpacked "
        f"before .pyc); the default venv on disk here: {disk['venv_mb']} MB "
        f"({disk['build_tools_mb']} MB of it pip/setuptools/wheel)",
        "columns": ["install set", "machine", "packages", "download MB", "installed MB",
                    "largest (MB)"],
        "rows": rows,
        "goals": [
            {"goal": f"default aarch64 download <= half of before ({BEFORE_DOWNLOAD_MB:.0f} MB)",
             "value": f"{default['download_mb']} MB",
             "met": default["download_mb"] <= BEFORE_DOWNLOAD_MB / 2},
            {"goal": f"default aarch64 venv <= 2/3 of before ({BEFORE_MB:.0f} MB)",
             "value": f"~{estimate} MB ({default['installed_mb']} MB unpacked + "
             f"{overhead:.1f} MB .pyc and build tools measured here)",
             "met": estimate <= BEFORE_MB * 2 / 3},
        ],
        "detail": detail,
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="aarch64 only")
    args = parser.parse_args()
    print(json.dumps(run(quick=args.quick), indent=2))


if __name__ == "__main__":
    main()
