"""`edge-recorder demo`: a scripted encounter on simulated hardware (see devtools/demo/)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path


def default_work_dir() -> Path:
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "edge-recorder" / "demo"


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="a scripted encounter end to end on simulated hardware (emulator, mosquitto, daemon)",
        description="Run mosquitto, the AAS emulator behind a fault proxy and the real daemon "
        "with a speech WAV as its microphone and mock GPIO pins; press the record button, cut "
        "and restore the network, stop, and check that the service holds exactly the device's "
        "bytes. Exit 0 only if it does. Ctrl-C at any point stops everything.",
    )
    parser.add_argument(
        "--work-dir",
        type=Path,
        default=None,
        metavar="D",
        help="speech cache and the last run's files: logs, spool, the service's WAVs "
        f"(default: {default_work_dir()})",
    )
    speed = parser.add_mutually_exclusive_group()
    speed.add_argument("--fast", action="store_true", help="play the audio at 4x real time")
    speed.add_argument("--speed", type=float, default=None, help="audio pace (default 1.0)")
    parser.add_argument(
        "--keep",
        action="store_true",
        help="after the verdict, keep the daemon, emulator and broker running until Ctrl-C",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import asyncio

    from devtools.demo.runner import FAST_SPEED, DemoOptions, run_demo

    speed = FAST_SPEED if args.fast else (args.speed if args.speed is not None else 1.0)
    if not 0 < speed <= 50:
        print("edge-recorder demo: --speed must be in (0, 50]")
        return 2
    work_dir = (args.work_dir or default_work_dir()).resolve()
    options = DemoOptions(work_dir=work_dir, speed=speed, keep=args.keep)
    try:
        return asyncio.run(run_demo(options))
    except KeyboardInterrupt:  # before the demo's own handlers were installed
        return 130
