"""The one entry point, `edge-recorder`, with a subcommand per job.

Subcommands live in `edge_recorder.commands`, one module each, found at start-up; a module
provides `register(subparsers)` and sets `func` on its parser. Nothing is listed here by hand,
so a command exists exactly when its implementation does.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from collections.abc import Callable, Sequence

from edge_recorder import __version__, commands

CommandFunc = Callable[[argparse.Namespace], int]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="edge-recorder",
        description="Exam-room ambient audio recorder: capture, spool, deliver.",
    )
    parser.add_argument("--version", action="version", version=f"edge-recorder {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{commands.__name__}.{info.name}")
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
