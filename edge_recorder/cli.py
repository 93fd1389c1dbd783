"""The one entry point, `edge-recorder`, with a subcommand per job.

Subcommands live in `edge_recorder.commands`, one module each, found at start-up; a module
provides `register(subparsers)` and sets `func` on its parser. Nothing is listed here by hand,
so a command exists exactly when its implementation does. Where the developer tools are
importable (a development checkout, never a device), their commands (`emulator`, `demo`) in
`devtools.commands` are found the same way; the device package never imports them by name.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import pkgutil
import sys
from collections.abc import Callable, Sequence
from types import ModuleType

from edge_recorder import __version__, commands

#: Where the developer tools' subcommands live when the checkout's `devtools` is importable.
DEVTOOLS_COMMANDS = "devtools.commands"

CommandFunc = Callable[[argparse.Namespace], int]


def devtools_commands() -> ModuleType | None:
    """The developer tools' command package, when this is a development checkout. None on a
    device, and None when some other project's `devtools` package is installed (PyPI has one)."""
    try:
        spec = importlib.util.find_spec(DEVTOOLS_COMMANDS)
    except ModuleNotFoundError:
        return None
    return importlib.import_module(DEVTOOLS_COMMANDS) if spec is not None else None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="edge-recorder",
        description="Exam-room ambient audio recorder: capture, spool, deliver.",
    )
    parser.add_argument("--version", action="version", version=f"edge-recorder {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    packages = [commands]
    extra = devtools_commands()
    if extra is not None:
        packages.append(extra)
    found = sorted(
        (info.name, package)
        for package in packages
        for info in pkgutil.iter_modules(package.__path__)
        if not info.name.startswith("_")
    )
    for name, package in found:
        module: ModuleType = importlib.import_module(f"{package.__name__}.{name}")
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    func: CommandFunc = args.func
    try:
        return func(args)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
