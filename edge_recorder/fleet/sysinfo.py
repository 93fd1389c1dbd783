"""What the machine says about itself: disk, temperature, throttling, uptime, OS, address.

Every reader tolerates absence (a laptop has no `vcgencmd`, a container no thermal zone) and
returns None rather than raising, because a missing sensor must never stop status reports.
Paths are parameters so tests point them at a fake tree.
"""

from __future__ import annotations

import platform
import re
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from edge_recorder import __version__

# Bits of `vcgencmd get_throttled` (Raspberry Pi firmware documentation).
THROTTLE_BITS = {
    "under_voltage": 0,
    "freq_capped": 1,
    "throttled": 2,
    "soft_temp_limit": 3,
    "under_voltage_occurred": 16,
    "freq_capped_occurred": 17,
    "throttled_occurred": 18,
    "soft_temp_limit_occurred": 19,
}
_BOOT = time.monotonic()


@dataclass(frozen=True)
class Throttling:
    raw: int
    flags: dict[str, bool]

    @property
    def active(self) -> bool:
        """True while the Pi is under-volted, capped or throttled right now."""
        return any(self.flags[name] for name in THROTTLE_BITS if not name.endswith("_occurred"))


@dataclass(frozen=True)
class SystemInfo:
    disk_free_bytes: int | None = None
    disk_total_bytes: int | None = None
    cpu_temp_c: float | None = None
    throttling: Throttling | None = None
    uptime_s: float | None = None
    process_uptime_s: float = 0.0
    version: str = __version__
    os: str | None = None
    kernel: str | None = None
    model: str | None = None
    ip: str | None = None
    hostname: str = field(default_factory=socket.gethostname)


class SystemProbe(Protocol):
    """Anything that can describe the machine (the real reader or a fake)."""

    def collect(self) -> SystemInfo: ...


def disk_usage(path: Path) -> tuple[int, int] | None:
    """(free, total) bytes of the filesystem holding `path` (or its nearest existing parent)."""
    for candidate in (path, *path.parents):
        if candidate.exists():
            try:
                usage = shutil.disk_usage(candidate)
            except OSError:
                return None
            return usage.free, usage.total
    return None


def cpu_temperature(thermal_root: Path = Path("/sys/class/thermal")) -> float | None:
    """°C of the CPU zone (`cpu-thermal` on a Pi), else the first readable zone."""
    zones = sorted(thermal_root.glob("thermal_zone*"))
    preferred = [z for z in zones if _read(z / "type") in ("cpu-thermal", "x86_pkg_temp")]
    for zone in preferred + zones:
        raw = _read(zone / "temp")
        if raw and re.fullmatch(r"-?\d+", raw):
            return round(int(raw) / 1000.0, 1)
    return None


def parse_throttled(text: str) -> Throttling | None:
    """`throttled=0x50005` → the decoded flags; None for anything else."""
    match = re.search(r"throttled=(0x[0-9a-fA-F]+|\d+)", text)
    if not match:
        return None
    raw = int(match.group(1), 0)
    return Throttling(raw, {name: bool(raw >> bit & 1) for name, bit in THROTTLE_BITS.items()})


def throttling(vcgencmd: str | None = None, timeout_s: float = 2.0) -> Throttling | None:
    """Raspberry Pi firmware throttling flags; None where `vcgencmd` is absent or fails."""
    exe = vcgencmd or shutil.which("vcgencmd")
    if not exe:
        return None
    try:
        done = subprocess.run(
            [exe, "get_throttled"], capture_output=True, text=True, timeout=timeout_s, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return parse_throttled(done.stdout) if done.returncode == 0 else None


def os_pretty_name(os_release: Path = Path("/etc/os-release")) -> str | None:
    text = _read(os_release)
    if not text:
        return None
    values = dict(re.findall(r'^([A-Z_]+)="?([^"\n]*)"?$', text, re.MULTILINE))
    return values.get("PRETTY_NAME") or values.get("NAME")


def system_uptime(proc_uptime: Path = Path("/proc/uptime")) -> float | None:
    text = _read(proc_uptime)
    try:
        return float(text.split()[0]) if text else None
    except ValueError:
        return None


def primary_ip(towards: str = "192.0.2.1") -> str | None:
    """Source address of the route towards `towards` (a UDP connect sends no packet)."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.connect((towards, 9))
            address: str = sock.getsockname()[0]
            return address
    except OSError:
        return None


def board_model(model_file: Path = Path("/proc/device-tree/model")) -> str | None:
    text = _read(model_file)
    return text.rstrip("\x00") if text else None


class LocalSystem:
    """Reads this machine; `disk_path` is the spool directory whose free space matters."""

    def __init__(self, disk_path: Path, *, route_to: str = "192.0.2.1") -> None:
        self._disk_path = disk_path
        self._route_to = route_to

    def collect(self) -> SystemInfo:
        usage = disk_usage(self._disk_path)
        return SystemInfo(
            disk_free_bytes=usage[0] if usage else None,
            disk_total_bytes=usage[1] if usage else None,
            cpu_temp_c=cpu_temperature(),
            throttling=throttling(),
            uptime_s=system_uptime(),
            process_uptime_s=round(time.monotonic() - _BOOT, 1),
            os=os_pretty_name(),
            kernel=platform.release() or None,
            model=board_model(),
            ip=primary_ip(self._route_to),
        )


class CachedProbe:
    """Reuses one reading for `max_age_s` (vcgencmd is a subprocess); never raises."""

    def __init__(self, probe: SystemProbe, max_age_s: float) -> None:
        self._probe = probe
        self._max_age_s = max_age_s
        self._cached: tuple[float, SystemInfo] | None = None

    def collect(self) -> SystemInfo:
        now = time.monotonic()
        if self._cached is None or now - self._cached[0] >= self._max_age_s:
            try:
                self._cached = (now, self._probe.collect())
            except Exception:  # a broken sensor must not stop status reports
                self._cached = (now, SystemInfo())
        return self._cached[1]


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8", errors="replace").strip()
    except OSError:
        return None


__all__ = [
    "CachedProbe",
    "LocalSystem",
    "SystemInfo",
    "SystemProbe",
    "Throttling",
    "cpu_temperature",
    "disk_usage",
    "os_pretty_name",
    "parse_throttled",
    "primary_ip",
    "system_uptime",
    "throttling",
]
