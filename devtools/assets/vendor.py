"""Copy the npm-locked browser libraries into the dashboard's static/vendor/ directory.

The dashboard serves uPlot from its own package (CSP `default-src 'self'`, no CDN, works on an
air-gapped hospital network), so the files are committed. What is committed must be exactly
what devtools/assets/package-lock.json locks (npm ci checks the integrity hash): this script
is the only writer, and `--check` (and tests/unit/dashboard/test_vendor_assets.py) fail when
the two drift. `make node` installs node_modules; `make assets` runs this script.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

ASSETS_DIR = Path(__file__).resolve().parent
ROOT = ASSETS_DIR.parent.parent
NODE_MODULES = ASSETS_DIR / "node_modules"
VENDOR_DIR = ROOT / "edge_recorder" / "dashboard" / "static" / "vendor"

# (file inside node_modules, name in static/vendor/)
FILES: tuple[tuple[str, str], ...] = (
    ("uplot/dist/uPlot.iife.min.js", "uPlot.iife.min.js"),
    ("uplot/dist/uPlot.min.css", "uPlot.min.css"),
    ("uplot/LICENSE", "uPlot.LICENSE"),
)


class MissingPackages(RuntimeError):
    """node_modules is not installed (run `make node`)."""


def pairs(
    node_modules: Path = NODE_MODULES, vendor_dir: Path = VENDOR_DIR
) -> list[tuple[Path, Path]]:
    """(source, destination) for every vendored file; raises MissingPackages naming `make node`."""
    missing = [src for src, _ in FILES if not (node_modules / src).is_file()]
    if missing:
        raise MissingPackages(
            f"{node_modules} lacks {', '.join(missing)}: run `make node` "
            "(npm ci in devtools/assets) first"
        )
    return [(node_modules / src, vendor_dir / dst) for src, dst in FILES]


def differences(node_modules: Path = NODE_MODULES, vendor_dir: Path = VENDOR_DIR) -> list[str]:
    """Names of the vendored files that are missing or differ from the locked package's."""
    return [
        dst.name
        for src, dst in pairs(node_modules, vendor_dir)
        if not dst.is_file() or dst.read_bytes() != src.read_bytes()
    ]


def copy(node_modules: Path = NODE_MODULES, vendor_dir: Path = VENDOR_DIR) -> list[str]:
    """Copy every vendored file; returns the names that changed."""
    changed = differences(node_modules, vendor_dir)
    vendor_dir.mkdir(parents=True, exist_ok=True)
    for src, dst in pairs(node_modules, vendor_dir):
        if dst.name in changed:
            shutil.copyfile(src, dst)
    return changed


def main(argv: list[str] | None = None) -> int:
    """`vendor.py` copies; `vendor.py --check` exits 1 when a committed file differs."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--check", action="store_true", help="compare only; exit 1 on a difference")
    args = parser.parse_args(argv)
    try:
        if args.check:
            stale = differences()
            if stale:
                print(
                    f"static/vendor differs from the locked package: {', '.join(stale)} "
                    "(run `make assets`)",
                    file=sys.stderr,
                )
                return 1
            print("static/vendor matches devtools/assets/package-lock.json")
            return 0
        changed = copy()
    except MissingPackages as exc:
        print(exc, file=sys.stderr)
        return 2
    print(f"copied {', '.join(changed)}" if changed else "static/vendor already up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
