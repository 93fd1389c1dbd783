"""Generate the Python stubs for protos/ into edge_recorder/_proto (or --out DIR).

Runs grpc_tools.protoc with the mypy-protobuf plugins, then rewrites the generated absolute
imports (`from ambient.audio.v1 import x_pb2`) to package-relative ones so the stubs live inside
`edge_recorder._proto` without touching sys.path. `make proto` calls this; the drift test in
tests/integration/emulator/test_proto_stubs.py runs it into a temporary directory and compares.
"""

from __future__ import annotations

import argparse
import re
import shutil
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DEFAULT_OUT = ROOT / "edge_recorder" / "_proto"
_ABS_IMPORT = re.compile(r"^from ambient\.audio\.v1 import (\w+)", re.MULTILINE)


def generate(out: Path) -> list[Path]:
    """Write the stubs under `out` and return the files written (sorted)."""
    from grpc_tools import protoc

    protos = sorted(str(p.relative_to(HERE)) for p in HERE.rglob("*.proto"))
    bindir = Path(sys.executable).parent
    out.mkdir(parents=True, exist_ok=True)
    include = Path(protoc.__file__).parent / "_proto"
    args = [
        "grpc_tools.protoc",
        f"-I{HERE}",
        f"-I{include}",
        f"--plugin=protoc-gen-mypy={bindir / 'protoc-gen-mypy'}",
        f"--plugin=protoc-gen-mypy_grpc={bindir / 'protoc-gen-mypy_grpc'}",
        f"--python_out={out}",
        f"--grpc_python_out={out}",
        f"--mypy_out={out}",
        f"--mypy_grpc_out={out}",
        *protos,
    ]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")
    written: list[Path] = []
    for path in sorted(out.rglob("*")):
        if path.suffix in {".py", ".pyi"}:
            text = path.read_text()
            fixed = _ABS_IMPORT.sub(r"from . import \1", text)
            if fixed != text:
                path.write_text(fixed)
            written.append(path)
    for directory in [out, *sorted(p for p in out.rglob("*") if p.is_dir())]:
        init = directory / "__init__.py"
        if not init.exists():
            init.write_text('"""Generated protobuf stubs (see protos/generate.py)."""\n')
            written.append(init)
    return sorted(written)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--clean", action="store_true", help="remove --out first")
    args = parser.parse_args()
    if args.clean and args.out.exists():
        shutil.rmtree(args.out)
    for path in generate(args.out):
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
