"""Config errors: one readable `key.path: reason` line per problem, and exit 78 (EX_CONFIG).

Apart from the loader so the hardware profiles (which the loader applies) can raise them too.
"""

from __future__ import annotations

import sys
import tomllib
from pathlib import Path
from typing import Any

EX_CONFIG = 78


class ConfigError(Exception):
    """Invalid configuration; `lines` holds one `key.path: reason` entry per problem."""

    def __init__(self, lines: list[str], source: str = "") -> None:
        self.lines = lines
        self.source = source
        super().__init__("\n".join(lines))


def read_toml(path: Path) -> dict[str, Any]:
    """Parse a TOML file, turning I/O and syntax problems into ConfigError."""
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigError([f"{path}: config file not found"], str(path)) from None
    except PermissionError:
        raise ConfigError([f"{path}: config file not readable (permission denied)"]) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"{path}: TOML syntax error: {exc}"], str(path)) from None


def print_config_error(error: ConfigError) -> None:
    print(f"edge-recorder: invalid configuration ({error.source}):", file=sys.stderr)
    for line in error.lines:
        print(f"  {line}", file=sys.stderr)
