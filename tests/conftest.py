"""Shared test fixtures: the repository root and a runner for the real CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Mapping
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

# Timing is not what property tests assert (speed goals live in benchmarks/): no per-example
# deadline and no "generation is slow" failure when CI shares the machine.
settings.register_profile(
    "edge-recorder", deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile("edge-recorder")

pytest_plugins = ["tests.support.emulator", "tests.support.mosquitto"]

ROOT = Path(__file__).resolve().parent.parent

RunCli = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def repo_root() -> Path:
    return ROOT


@pytest.fixture
def run_cli(tmp_path: Path) -> RunCli:
    """Run `edge-recorder ARGS` as a real process; environment overrides by keyword."""

    def run(
        *args: str,
        env: Mapping[str, str] | None = None,
        timeout: float = 60,
        input_text: str | None = None,
    ) -> subprocess.CompletedProcess[str]:
        full_env = {k: v for k, v in os.environ.items() if not k.startswith("EDGE_RECORDER")}
        full_env.pop("JOURNAL_STREAM", None)
        full_env.update(env or {})
        return subprocess.run(
            [sys.executable, "-m", "edge_recorder", *args],
            capture_output=True,
            text=True,
            env=full_env,
            timeout=timeout,
            cwd=tmp_path,
            input=input_text,
            check=False,
        )

    return run
