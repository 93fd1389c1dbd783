"""Reading the config file and turning every problem into one readable line per key.

A config error must stop the daemon (exit 78, EX_CONFIG) before anything touches the spool,
with the dotted key path and the reason, so hospital IT can fix it from the journal alone.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from edge_recorder.config.errors import EX_CONFIG, ConfigError, print_config_error, read_toml
from edge_recorder.config.hardware import apply_profile
from edge_recorder.config.model import Config, deep_merge, env_overrides

__all__ = [
    "EX_CONFIG",
    "ConfigError",
    "build_config",
    "load_config",
    "print_config_error",
    "read_toml",
    "validation_lines",
]

# Keys that would hold a secret inline; each maps to the reference the user should use instead.
_INLINE_SECRET_HINTS = {
    "client_secret": "client_secret_file (or the systemd credential)",
    "password": "password_file (or the systemd credential)",
    "token": "token_file",
    "secret": "a *_file key (or a systemd credential)",
    "key": "key_file (or the systemd credential)",
    "private_key": "a *_file key",
}

_NO_ECHO = frozenset({"missing", "model_type", "endpoint"})


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
    message = message.removeprefix("Value error, ").removeprefix(f"{path} ")
    if kind == "missing":
        message = "required key is missing"
    # The value is echoed (bounded) to show what was read, but never a whole section (a
    # model-level error's input) and never an endpoint: a URL may carry user:password@.
    if (
        "input" in error
        and kind not in _NO_ECHO
        and loc
        and not isinstance(error["input"], dict | list)
    ):
        shown = repr(error["input"])
        if len(shown) > 60:
            shown = shown[:57] + "..."
        message = f"{message} (got {shown})"
    return f"{path}: {message}"


def validation_lines(exc: ValidationError) -> list[str]:
    """One human line per pydantic error, each starting with the dotted key path."""
    return [_describe(error) for error in exc.errors(include_url=False)]


def build_config(raw: dict[str, Any], environ: Mapping[str, str] | None = None) -> Config:
    """Validate a raw tree (plus environment overrides) into a Config or raise ConfigError."""
    tree = deep_merge(raw, env_overrides(dict(os.environ if environ is None else environ)))
    tree = apply_profile(tree)  # audio.profile = "..." expands into [audio] defaults
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
