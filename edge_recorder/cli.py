"""The one entry point, `edge-recorder`, with a subcommand per job.

Subcommands live in `edge_recorder.commands`, one module each, found at start-up; a module
provides `register(subparsers)` and sets `func` on its parser. Nothing is listed here by hand,
so a command exists exactly when its implementation does. Where the developer tools are
importable (a development checkout, never a device), their commands (`emulator`, `demo`) in
`devtools.commands` are found the same way; the device package never imports them by name.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import importlib.util
import os
import pkgutil
import sys
from collections.abc import Callable, Sequence
from types import ModuleType

from edge_recorder import __version__, commands

#: Where the developer tools' subcommands live when the checkout's `devtools` is importable.
DEVTOOLS_COMMANDS = "devtools.commands"

CommandFunc = Callable[[argparse.Namespace], int]

#: Exit status when the reader of our stdout went away (`ctl ... | head`): 128 + SIGPIPE, what
#: a shell reports for a C tool killed by the signal, so `set -o pipefail` scripts see the
#: same status as with `cat` or `grep`.
EXIT_BROKEN_PIPE = 141


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
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        func: CommandFunc = args.func
        return func(args)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return _reader_gone()


def _reader_gone() -> int:
    """The pipe's reader closed early (`| head`): stop quietly, as Unix tools do.

    Python ignores SIGPIPE, so a write raised instead; and the interpreter would flush stdout
    again at exit, fail again and print "Exception ignored ... BrokenPipeError". Pointing
    stdout at /dev/null makes that last flush harmless. Once, here, for every command.
    """
    with contextlib.suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    return EXIT_BROKEN_PIPE


if __name__ == "__main__":
    sys.exit(main())
