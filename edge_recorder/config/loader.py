"""Reading the config file and turning every problem into one readable line per key.

A config error must stop the daemon (exit 78, EX_CONFIG) before anything touches the spool,
with the dotted key path and the reason, so hospital IT can fix it from the journal alone.
"""

from __future__ import annotations

import difflib
import os
import tomllib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from edge_recorder.config.extras import missing_extra_lines
from edge_recorder.config.model import Config, deep_merge, env_overrides

EX_CONFIG = 78

# Keys that would hold a secret inline; each maps to the reference the user should use instead.
_INLINE_SECRET_HINTS = {
    "client_secret": "client_secret_file (or the systemd credential)",
    "password": "password_file (or the systemd credential)",
    "token": "token_file",
    "secret": "a *_file key (or a systemd credential)",
    "key": "key_file (or the systemd credential)",
    "private_key": "a *_file key",
}

# Hooks that adjust the raw tree before validation (hardware profiles register one).
RawTreeHook = Callable[[dict[str, Any]], dict[str, Any]]
_raw_tree_hooks: list[RawTreeHook] = []


def register_raw_tree_hook(hook: RawTreeHook) -> None:
    """Let another module (e.g. hardware profiles) expand the raw tree before validation."""
    if hook not in _raw_tree_hooks:
        _raw_tree_hooks.append(hook)


class ConfigError(Exception):
    """Invalid configuration; `lines` holds one `key.path: reason` entry per problem."""

    def __init__(self, lines: list[str], source: str = "") -> None:
        self.lines = lines
        self.source = source
        super().__init__("\n".join(lines))


def _model_at(loc: tuple[int | str, ...]) -> type[BaseModel] | None:
    """The pydantic model class that owns the key at `loc` (for 'did you mean')."""
    model: type[BaseModel] = Config
    for part in loc:
        field = model.model_fields.get(str(part))
        if field is None:
            return None
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            model = annotation
        else:
            return None
    return model


def _describe(error: Mapping[str, Any]) -> str:
    loc: tuple[int | str, ...] = tuple(error.get("loc", ()))
    path = ".".join(str(p) for p in loc) or "(top level)"
    kind = error.get("type", "")
    if kind == "extra_forbidden":
        name = str(loc[-1]) if loc else ""
        if name in _INLINE_SECRET_HINTS or name.endswith(("_secret", "_password", "_token")):
            hint = _INLINE_SECRET_HINTS.get(name, "a *_file key (or a systemd credential)")
            return f"{path}: secrets are not accepted inline; use {hint}"
        owner = _model_at(loc[:-1])
        what = "unknown section" if len(loc) == 1 else "unknown key"
        if owner is not None:
            close = difflib.get_close_matches(name, list(owner.model_fields), n=1, cutoff=0.6)
            if close:
                return f"{path}: {what}; did you mean '{close[0]}'?"
        return f"{path}: {what}"
    message = str(error.get("msg", "invalid"))
    message = message.removeprefix("Value error, ")
    if kind == "missing":
        message = "required key is missing"
    if "input" in error and kind not in ("missing", "model_type") and loc:
        shown = repr(error["input"])
        if len(shown) > 60:
            shown = shown[:57] + "..."
        message = f"{message} (got {shown})"
    return f"{path}: {message}"


def validation_lines(exc: ValidationError) -> list[str]:
    """One human line per pydantic error, each starting with the dotted key path."""
    return [_describe(error) for error in exc.errors(include_url=False)]


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


def build_config(raw: dict[str, Any], environ: Mapping[str, str] | None = None) -> Config:
    """Validate a raw tree (plus environment overrides) into a Config or raise ConfigError."""
    tree = deep_merge(raw, env_overrides(dict(os.environ if environ is None else environ)))
    for hook in _raw_tree_hooks:
        tree = hook(tree)
    try:
        return Config.model_validate(tree)
    except ValidationError as exc:
        raise ConfigError(validation_lines(exc)) from None


def load_config(path: Path | None, environ: Mapping[str, str] | None = None) -> Config:
    """Load the config file at `path` (None: defaults only) plus environment overrides."""
    raw = read_toml(path) if path is not None else {}
    try:
        return build_config(raw, environ)
    except ConfigError as exc:
        exc.source = str(path) if path else "(defaults)"
        raise


def load_usable_config(path: Path | None, environ: Mapping[str, str] | None = None) -> Config:
    """`load_config`, then refuse a config whose features need an optional extra that is not
    installed (the daemon, `check` and `record` run the configured features; `ctl` and `spool`
    only read the config, so they use `load_config`)."""
    config = load_config(path, environ)
    lines = missing_extra_lines(config)
    if lines:
        raise ConfigError(lines, str(path) if path else "(defaults)")
    return config


# Hardware profiles register their raw-tree hook on import (audio.profile = "...").
from edge_recorder.config import hardware as _hardware  # noqa: E402, F401
