"""Machine readers against a fake /sys, /etc and a fake vcgencmd: absent means None."""

from __future__ import annotations

import os
from pathlib import Path

from edge_recorder.fleet import sysinfo
from edge_recorder.fleet.sysinfo import (
    CachedProbe,
    LocalSystem,
    SystemInfo,
    cpu_temperature,
    disk_usage,
    os_pretty_name,
    parse_throttled,
    system_uptime,
    throttling,
)


def zone(root: Path, n: int, kind: str, millideg: str) -> None:
    d = root / f"thermal_zone{n}"
    d.mkdir(parents=True)
    (d / "type").write_text(kind + "\n")
    (d / "temp").write_text(millideg + "\n")


def test_cpu_temperature_prefers_the_cpu_zone(tmp_path: Path) -> None:
    zone(tmp_path, 0, "acpitz", "27800")
    zone(tmp_path, 1, "cpu-thermal", "51652")
    assert cpu_temperature(tmp_path) == 51.7
    assert cpu_temperature(tmp_path / "missing") is None


def test_cpu_temperature_falls_back_and_skips_garbage(tmp_path: Path) -> None:
    zone(tmp_path, 0, "acpitz", "n/a")
    zone(tmp_path, 1, "soc", "-5000")
    assert cpu_temperature(tmp_path) == -5.0


def test_parse_throttled() -> None:
    flags = parse_throttled("throttled=0x50005\n")
    assert flags is not None and flags.raw == 0x50005 and flags.active
    assert flags.flags["under_voltage"] and flags.flags["throttled"]
    assert flags.flags["under_voltage_occurred"] and flags.flags["throttled_occurred"]
    assert not flags.flags["freq_capped"]
    history_only = parse_throttled("throttled=0x50000")
    assert history_only is not None and not history_only.active
    assert parse_throttled("VCHI initialization failed") is None


def test_throttling_runs_vcgencmd_when_present(tmp_path: Path) -> None:
    fake = tmp_path / "vcgencmd"
    fake.write_text('#!/bin/sh\n[ "$1" = get_throttled ] && echo throttled=0x4 && exit 0\nexit 1\n')
    fake.chmod(0o755)
    result = throttling(str(fake))
    assert result is not None and result.flags["throttled"] and result.raw == 4
    broken = tmp_path / "broken"
    broken.write_text("#!/bin/sh\nexit 3\n")
    broken.chmod(0o755)
    assert throttling(str(broken)) is None
    assert throttling(str(tmp_path / "absent")) is None


def test_os_release_and_uptime(tmp_path: Path) -> None:
    release = tmp_path / "os-release"
    release.write_text('NAME="Debian GNU/Linux"\nPRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\n')
    assert os_pretty_name(release) == "Debian GNU/Linux 12 (bookworm)"
    release.write_text("NAME=Raspbian\n")
    assert os_pretty_name(release) == "Raspbian"
    assert os_pretty_name(tmp_path / "none") is None
    uptime = tmp_path / "uptime"
    uptime.write_text("12345.67 4000.00\n")
    assert system_uptime(uptime) == 12345.67
    uptime.write_text("garbage")
    assert system_uptime(uptime) is None


def test_disk_usage_walks_up_to_an_existing_directory(tmp_path: Path) -> None:
    usage = disk_usage(tmp_path / "spool" / "not" / "yet")
    assert usage is not None
    free, total = usage
    stat = os.statvfs(tmp_path)
    assert total == stat.f_blocks * stat.f_frsize and 0 <= free <= total


def test_local_system_collects_something_real(tmp_path: Path) -> None:
    info = LocalSystem(tmp_path).collect()
    assert info.disk_free_bytes is not None and info.disk_total_bytes is not None
    assert info.version and info.hostname
    assert info.uptime_s is None or info.uptime_s > 0


def test_cached_probe_reuses_and_survives_errors() -> None:
    class Probe:
        def __init__(self) -> None:
            self.calls = 0

        def collect(self) -> SystemInfo:
            self.calls += 1
            if self.calls == 2:
                raise OSError("sensor gone")
            return SystemInfo(cpu_temp_c=float(self.calls))

    slow = Probe()
    cached = CachedProbe(slow, max_age_s=3600)
    assert cached.collect().cpu_temp_c == 1.0
    assert cached.collect().cpu_temp_c == 1.0 and slow.calls == 1
    always = CachedProbe(Probe(), max_age_s=0)
    assert always.collect().cpu_temp_c == 1.0
    assert always.collect().cpu_temp_c is None  # the probe raised: an empty reading
    assert always.collect().cpu_temp_c == 3.0
    assert sysinfo.primary_ip("127.0.0.1") == "127.0.0.1"
