"""`edge-recorder run`: the daemon (what systemd starts; see edge_recorder/app/daemon.py)."""

from __future__ import annotations

import argparse

from edge_recorder.commands._common import add_config_argument, config_path


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "run",
        help="run the recorder daemon (capture, spool, delivery, panel, control socket)",
        description="Run the recording daemon in the foreground. A config error exits 78 "
        "(EX_CONFIG) before the spool is touched; SIGTERM closes the open recording and exits "
        "0; SIGHUP reloads the config (an invalid one is logged and ignored). Talks sd_notify "
        "(READY=1, STATUS=, WATCHDOG=1) when NOTIFY_SOCKET is set.",
    )
    add_config_argument(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from edge_recorder.app.daemon import main

    return main(config_path(args))
