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


#: A config file is a few kB; anything much larger is a mistake (or an attack on the parser).
MAX_CONFIG_BYTES = 1024 * 1024


def _where(data: bytes, offset: int) -> str:
    """`line L, column C` of a byte offset: the only excerpt of the file an error may show."""
    line = data.count(b"\n", 0, offset) + 1
    column = offset - (data.rfind(b"\n", 0, offset) + 1) + 1
    return f"line {line}, column {column}"


def read_toml(path: Path) -> dict[str, Any]:
    """Parse a TOML file, turning every way it can be unreadable into one ConfigError line.

    The messages name the file and a position, never the file's text: an exception that
    carries the file (UnicodeDecodeError holds all of it) must not reach a log or a traceback,
    since the file may name hosts and people. Whatever the bytes, the result is a dict or a
    ConfigError (exit 78): a traceback would be exit 1, which systemd restarts forever.
    """
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_CONFIG_BYTES + 1)
    except FileNotFoundError:
        raise ConfigError([f"{path}: config file not found"], str(path)) from None
    except PermissionError:
        raise ConfigError(
            [f"{path}: config file not readable (permission denied)"], str(path)
        ) from None
    except IsADirectoryError:
        raise ConfigError([f"{path}: is a directory, not a config file"], str(path)) from None
    except OSError as exc:
        raise ConfigError(
            [f"{path}: cannot read the config file: {exc.strerror}"], str(path)
        ) from None
    if len(data) > MAX_CONFIG_BYTES:
        limit = MAX_CONFIG_BYTES // 1024
        raise ConfigError([f"{path}: larger than {limit} KiB; not a config file?"], str(path))
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        where = f"byte 0x{data[exc.start]:02x} at {_where(data, exc.start)}"
        raise ConfigError(
            [f"{path}: not UTF-8 text ({where}); save the file as UTF-8"], str(path)
        ) from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        message = str(exc) if len(str(exc)) <= 160 else str(exc)[:157] + "..."
        raise ConfigError([f"{path}: TOML syntax error: {message}"], str(path)) from None
    except RecursionError:
        raise ConfigError([f"{path}: TOML nested too deeply"], str(path)) from None
    except ValueError:  # tomllib's int() of a number longer than Python converts (4300 digits)
        raise ConfigError(
            [f"{path}: TOML value too large (a number of thousands of digits?)"], str(path)
        ) from None


def print_config_error(error: ConfigError) -> None:
    print(f"edge-recorder: invalid configuration ({error.source}):", file=sys.stderr)
    for line in error.lines:
        print(f"  {line}", file=sys.stderr)
