"""Reading and checking the shipped unit files with systemd's own tools.

Shared by the device unit's tests (test_unit_file.py) and the dashboard unit's
(test_fleet_unit_file.py), so both are held to the same checks: `systemd-analyze verify` with
no message about the unit, and `systemd-analyze security` at most MAX_EXPOSURE.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

SYSTEMD_DIR = Path(__file__).resolve().parents[3] / "systemd"
DEVICE_UNIT = SYSTEMD_DIR / "edge-recorder.service"
INSTALLED_EXEC = "/opt/edge-recorder/venv/bin/edge-recorder"
MAX_EXPOSURE = 2.0


def directives(path: Path = DEVICE_UNIT) -> dict[str, list[str]]:
    """Every `Key=value` of the unit (comments and sections dropped), values in order."""
    out: dict[str, list[str]] = {}
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";", "[")):
            continue
        key, _, value = line.partition("=")
        out.setdefault(key, []).append(value)
    return out


def analyze(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["systemd-analyze", *args], capture_output=True, text=True, timeout=60, cwd=cwd
    )


def about_our_unit(result: subprocess.CompletedProcess[str]) -> list[str]:
    """Messages about our unit (verify also loads, and may comment on, the host's units)."""
    return [
        line for line in (result.stdout + result.stderr).splitlines() if "edge-recorder" in line
    ]


def with_venv_exec(unit: Path, tmp_path: Path, text: str | None = None) -> Path:
    """A copy of `unit` (or of `text`, an edited one) whose only change is ExecStart at this
    venv's real `edge-recorder`: verify refuses a missing binary, and /opt/edge-recorder does
    not exist on a build machine. That nothing else changed is asserted."""
    venv_exec = Path(sys.executable).parent / "edge-recorder"
    assert venv_exec.is_file()
    original = unit.read_text() if text is None else text
    copy = tmp_path / unit.name
    copy.write_text(original.replace(f"ExecStart={INSTALLED_EXEC} ", f"ExecStart={venv_exec} "))
    changed = [
        (a, b)
        for a, b in zip(original.splitlines(), copy.read_text().splitlines(), strict=True)
        if a != b
    ]
    assert len(changed) == 1 and changed[0][0].startswith(f"ExecStart={INSTALLED_EXEC} ")
    return copy


def exposure(output: str) -> float:
    match = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", output)
    assert match, output[-500:]
    return float(match.group(1))


def security(path: Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    """`systemd-analyze security` of a unit file, failing above MAX_EXPOSURE."""
    threshold = f"--threshold={round(MAX_EXPOSURE * 10)}"
    return analyze("security", "--offline=true", threshold, str(path), cwd=cwd)


def unhardened(unit: Path, tmp_path: Path) -> Path:
    """A copy of `unit` cut before its `# ---- Hardening.` block (the [Install] part kept)."""
    text = unit.read_text()
    plain = tmp_path / unit.name
    plain.write_text(
        text[: text.index("# ---- Hardening.")] + "\n[Install]\nWantedBy=multi-user.target\n"
    )
    return plain
