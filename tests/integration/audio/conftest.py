"""Fixtures for capture through real libasound: the `file`-plugin config, the fault shim
(compiled here with gcc), and a runner that captures in a fresh child process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[3]
ALSA_CONF = ROOT / "tests" / "support" / "alsa" / "fakemic.conf"
SHIM_SOURCE = ROOT / "tests" / "support" / "alsa_shim" / "alsa_fault_shim.c"
CHILD = Path(__file__).with_name("capture_child.py")
SYSTEM_ALSA_CONF = Path("/usr/share/alsa/alsa.conf")


@dataclass
class Capture:
    returncode: int
    stderr: str
    data: bytes
    items: list[dict[str, Any]]
    stats: dict[str, Any]
    shim_log: list[str] = field(default_factory=list)

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [item for item in self.items if item["type"] == kind]


RunCapture = Callable[..., Capture]


def alsa_env() -> dict[str, str]:
    """The child's environment: our PCM definitions after the system's (which must be first)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EDGE_RECORDER", "SHIM_"))}
    env["ALSA_CONFIG_PATH"] = f"{SYSTEM_ALSA_CONF}:{ALSA_CONF}"
    env["PYTHONPATH"] = str(ROOT)
    return env


@pytest.fixture(scope="session")
def fault_shim(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("shim") / "alsa_fault_shim.so"
    subprocess.run(
        [
            "gcc",
            "-shared",
            "-fPIC",
            "-O2",
            "-Wall",
            "-o",
            str(out),
            str(SHIM_SOURCE),
            "-ldl",
            "-lasound",
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    return out


@pytest.fixture
def run_capture(tmp_path: Path, fault_shim: Path) -> RunCapture:
    """Capture with AlsaSource in a child process; `shim` env vars enable fault injection."""
    counter = iter(range(1000))

    def run(
        spec: dict[str, Any], shim: dict[str, str] | None = None, timeout: float = 60
    ) -> Capture:
        n = next(counter)
        spec = {
            "out": str(tmp_path / f"out{n}.raw"),
            "log": str(tmp_path / f"log{n}.jsonl"),
            **spec,
        }
        spec_path = tmp_path / f"spec{n}.json"
        spec_path.write_text(json.dumps(spec))
        env = alsa_env()
        shim_log = tmp_path / f"shim{n}.log"
        if shim is not None:
            env["LD_PRELOAD"] = str(fault_shim)
            env["SHIM_LOG"] = str(shim_log)
            env.update(shim)
        proc = subprocess.run(
            [sys.executable, str(CHILD), str(spec_path)],
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        items = (
            [json.loads(line) for line in Path(spec["log"]).read_text().splitlines()]
            if Path(spec["log"]).exists()
            else []
        )
        data = Path(spec["out"]).read_bytes() if Path(spec["out"]).exists() else b""
        stats = json.loads(proc.stdout.strip().splitlines()[-1]) if proc.stdout.strip() else {}
        lines = shim_log.read_text().splitlines() if shim_log.exists() else []
        return Capture(proc.returncode, proc.stderr, data, items, stats, lines)

    return run
