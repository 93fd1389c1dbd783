"""Optional extras: which configured feature needs which `pip install 'edge-recorder[NAME]'`.

Why: a device installs only what its configuration uses (the default install leaves out
onnxruntime and the AWS libraries, about 150 MB). A configuration that asks for a feature whose
extra is missing must fail where an operator looks, `edge-recorder check` and start-up, with
exit 78 (EX_CONFIG) and the extra to install, not with an ImportError deep in a delivery task.
Only finds modules, never imports them: importing onnxruntime alone costs ~30 MB of RSS.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from edge_recorder.config.loader import ConfigError, load_config
from edge_recorder.config.model import Config
from edge_recorder.uplinks.registry import SERVICES

#: `pyproject.toml` extra -> the top-level modules it provides (a test keeps the two in step).
EXTRA_MODULES: dict[str, tuple[str, ...]] = {
    "onnx": ("onnxruntime",),
    "aws": ("awscrt", "botocore"),
    "array-check": ("pystoi",),  # only `array-check`'s STOI column: no configured feature
}


@dataclass(frozen=True)
class NeededExtra:
    """One configured feature that needs an optional extra."""

    key: str  # the config key that asks for it
    value: str
    extra: str


def needed_extras(config: Config) -> list[NeededExtra]:
    """The extras this configuration uses (pure: no imports, no I/O)."""
    needed: list[NeededExtra] = []
    if config.vad.engine == "silero" and config.vad.silero_backend == "onnxruntime":
        needed.append(NeededExtra("vad.silero_backend", "onnxruntime", "onnx"))
    extra = SERVICES[config.uplink.service].extra
    if extra is not None:
        needed.append(NeededExtra("uplink.service", config.uplink.service, extra))
    return needed


def missing_extra_lines(
    config: Config,
    module_present: Callable[[str], bool] = lambda name: importlib.util.find_spec(name) is not None,
) -> list[str]:
    """One 'key: reason' line per configured feature whose extra is not installed."""
    lines = []
    for need in needed_extras(config):
        absent = [m for m in EXTRA_MODULES[need.extra] if not module_present(m)]
        if absent:
            lines.append(
                f"{need.key}: {need.value!r} needs the optional extra {need.extra!r}, which is "
                f"not installed (missing: {', '.join(absent)}); install it with "
                f"pip install 'edge-recorder[{need.extra}]' (or the package's "
                f"extra-{need.extra}.txt lock export)"
            )
    return lines


def load_usable_config(path: Path | None, environ: Mapping[str, str] | None = None) -> Config:
    """`load_config`, then refuse a config whose features need an optional extra that is not
    installed (the daemon, `check` and `record` run the configured features; `ctl` and `spool`
    only read the config, so they use `load_config`)."""
    config = load_config(path, environ)
    lines = missing_extra_lines(config)
    if lines:
        raise ConfigError(lines, str(path) if path else "(defaults)")
    return config
