"""Helpers shared by subcommands: the --config option and loading config or exiting 78."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from edge_recorder.app.extras import load_usable_config
from edge_recorder.config.loader import EX_CONFIG, ConfigError, load_config, print_config_error
from edge_recorder.config.model import DEFAULT_CONFIG_PATH, Config


def add_config_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        type=Path,
        default=None,
        metavar="PATH",
        help=f"config file (default: $EDGE_RECORDER_CONFIG or {DEFAULT_CONFIG_PATH})",
    )


def config_path(args: argparse.Namespace) -> Path:
    explicit: Path | None = getattr(args, "config", None)
    if explicit is not None:
        return explicit
    return Path(os.environ.get("EDGE_RECORDER_CONFIG", str(DEFAULT_CONFIG_PATH)))


def load_or_exit(args: argparse.Namespace, *, usable: bool = True) -> Config:
    """The validated config, or exit 78 (EX_CONFIG) with one line per problem on stderr.

    `usable`: also refuse a config whose features need an optional extra that is not installed
    (commands that only read the config, such as `ctl` and `spool`, pass False)."""
    load = load_usable_config if usable else load_config
    try:
        return load(config_path(args))
    except ConfigError as error:
        print_config_error(error)
        raise SystemExit(EX_CONFIG) from None
