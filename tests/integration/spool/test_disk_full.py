"""A full disk clears when space is really back.

The capture thread learns of a full disk first (a write refused: by the spool's own reserve
check, or ENOSPC from the kernel) and raises the spool_full alarm itself. The daemon's
once-a-second space check used to see nothing wrong (the free space just before the failing
write looked fine), so it never said "space is back" either, and the device stayed in error
after space was freed. Now the spool keeps reporting the refusal until the space is really
there, and the daemon re-sends the space check's verdict whenever it disagrees with the alarm
the controller holds: raised by ENOSPC, then `alarm_cleared` to the fleet once space is freed.
"""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from edge_recorder.app.daemon import Daemon
from edge_recorder.app.recorder import MqttHandler, Recorder
from edge_recorder.config.model import Config
from edge_recorder.delivery.engine import DeliverySnapshot
from edge_recorder.encounter import events as ev
from edge_recorder.encounter.controller import EncounterController, Limits
from edge_recorder.fleet.reporter import FleetReporter
from edge_recorder.panel.gpio import NullPanel
from edge_recorder.spool import Spool, SpoolDiskFull
from edge_recorder.spool.fileops import CountingFileOps
from edge_recorder.status import FleetCounters, MicStatus
from tests.integration.fleet.fakes import FakeSystem
from tests.support.mosquitto import Collector, Mosquitto

ROOT = Path(__file__).resolve().parents[3]
PLENTY = 10**10


@pytest.mark.parametrize(
    ("scenario", "reason"), [("blocks", "disk-reserve"), ("inodes", "disk-full")]
)
def test_a_real_small_disk_filled_by_the_spool_alarms_until_space_is_freed(
    scenario: str, reason: str, tmp_path: Path
) -> None:
    """A real tmpfs (3 MiB, in a private mount namespace): the spool fills it, then 1.2 MB is
    freed. `inodes`: the kernel says ENOSPC while statvfs still shows 1.9 MB free."""
    userns = [] if os.geteuid() == 0 else ["--map-root-user"]
    proc = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", *userns, sys.executable, "-m",
         "tests.integration.spool.disk_full_child", str(tmp_path), scenario],
        capture_output=True, text=True, cwd=ROOT, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads(proc.stdout.splitlines()[-1])
    assert report["alarm_before"] is None and report["appended"] > 0
    assert report["refused"] == reason
    assert report["alarm_after_refusal"] == reason  # the space check now sees the refusal
    assert report["alarm_checked_again"] == reason  # and keeps seeing it until space is back
    assert report["alarm_after_free"] is None and report["free_after"] >= 1_200_000
    assert report["recorded_after_free"] == 3200


@dataclass
class FakeWorker:
    mic: MicStatus = field(default_factory=lambda: MicStatus(present=True))


@dataclass
class FakeDelivery:
    wakes: int = 0

    def wake(self) -> None:
        self.wakes += 1

    def snapshot(self) -> DeliverySnapshot:
        return DeliverySnapshot(True, None, None, False, None)


@dataclass
class FakeFleet:
    """What the MQTT reporter is handed: the events it publishes."""

    events: list[tuple[str, Any]] = field(default_factory=list)

    def status_changed(self) -> None:
        pass

    def counters(self) -> FleetCounters:
        return FleetCounters()

    def event(self, event: str, *, encounter_ref: str | None = None, **details: Any) -> None:
        self.events.append((event, details.get("code")))


def _config(tmp_path: Path, **mqtt: Any) -> Config:
    return Config.model_validate(
        {
            "device": {"id": "room-7"},
            "spool": {
                "dir": str(tmp_path / "spool"),
                "key_file": str(tmp_path / "spool.key"),
                "reserve_free_bytes": 64 * 1024 * 1024,
            },
            "mqtt": {"birth_seq_file": str(tmp_path / "birth"), **mqtt},
        }
    )


async def _device(
    tmp_path: Path, config: Config | None = None
) -> tuple[Daemon, Spool, CountingFileOps, FakeFleet]:
    config = config or _config(tmp_path)
    ops = CountingFileOps(fake_free=PLENTY)
    spool = Spool.open(config.spool, environ={}, ops=ops)
    daemon = Daemon(config, tmp_path / "config.toml")
    controller = EncounterController(Limits(), encounter_ref=spool.encounter_ref)
    fleet = FakeFleet()
    daemon.spool, daemon.delivery = spool, FakeDelivery()  # type: ignore[assignment]
    daemon.recorder = Recorder(
        controller, NullPanel(), FakeWorker(), spool, daemon.delivery,  # type: ignore[arg-type]
        on_change=lambda _status: None, fleet=fleet,
    )  # fmt: skip
    daemon._check_health()
    assert daemon.recorder.status().alarms == [] and fleet.events == []
    return daemon, spool, ops, fleet


def _refuse_a_write(spool: Spool, ops: CountingFileOps, daemon: Daemon) -> None:
    """The kernel says ENOSPC (the free space still looked fine); capture raises the alarm."""
    writer = spool.begin_recording("enc-1", 1, str(uuid.uuid4()), codec="pcm16", sample_rate=16000)
    ops.fail_at_write, ops.fail_errno = ops.writes + 1, errno.ENOSPC
    with pytest.raises(SpoolDiskFull):
        writer.append(b"\0" * 3200)
    daemon.recorder.dispatch(ev.SpoolFull(hard=True))  # what the capture worker posts


async def test_enospc_raises_the_alarm_and_freed_space_clears_it_to_the_fleet(
    tmp_path: Path,
) -> None:
    daemon, spool, ops, fleet = await _device(tmp_path)
    try:
        _refuse_a_write(spool, ops, daemon)
        assert fleet.events == [("alarm", "spool_full")]
        for _ in range(3):  # the once-a-second check keeps the alarm while space is short
            daemon._check_health()
            assert spool.space().alarm == "disk-full"
            assert daemon.recorder.status().state == "error"
        ops.fake_free = PLENTY + 512 * 1024  # not enough yet (room for one full append)
        daemon._check_health()
        assert "spool_full" in daemon.recorder.status().alarms
        ops.fake_free = PLENTY + 1_200_000  # 1.2 MB freed
        daemon._check_health()
        status = daemon.recorder.status()
        assert status.state == "idle" and status.alarms == [] and spool.space().alarm is None
        assert fleet.events == [("alarm", "spool_full"), ("alarm_cleared", "spool_full")]
    finally:
        spool.close()


async def test_space_freed_before_the_check_ever_ran_still_clears_the_alarm(
    tmp_path: Path,
) -> None:
    daemon, spool, ops, fleet = await _device(tmp_path)
    try:
        _refuse_a_write(spool, ops, daemon)
        ops.fake_free = PLENTY + 1_200_000  # delivery reclaimed audio within the same second
        daemon._check_health()
        assert daemon.recorder.status().alarms == []
        assert fleet.events == [("alarm", "spool_full"), ("alarm_cleared", "spool_full")]
        daemon._check_health()  # and nothing flaps afterwards
        assert fleet.events[-1] == ("alarm_cleared", "spool_full") and len(fleet.events) == 2
    finally:
        spool.close()


async def test_the_alarm_and_its_clearing_reach_mqtt(
    tmp_path: Path,
    mosquitto_broker: Mosquitto,
    mqtt_collector: Callable[..., Collector],
) -> None:
    """The same, through the real fleet reporter and a real broker."""
    config = _config(tmp_path, host=mosquitto_broker.host, port=mosquitto_broker.port)
    daemon, spool, ops, _ = await _device(tmp_path, config)
    watcher = mqtt_collector(mosquitto_broker, ["edge-recorder/room-7/events"])
    reporter = FleetReporter(
        config, daemon.recorder.status, MqttHandler(daemon.recorder), system=FakeSystem()
    )
    await reporter.start()
    daemon.recorder.fleet = reporter
    try:
        reporter.event("started")
        await watcher.await_for(lambda m: m.json()["type"] == "started")
        _refuse_a_write(spool, ops, daemon)
        daemon._check_health()
        raised = await watcher.await_for(lambda m: m.json()["type"] == "alarm")
        assert raised.json()["code"] == "spool_full"
        ops.fake_free = PLENTY + 1_200_000
        daemon._check_health()
        cleared = await watcher.await_for(lambda m: m.json()["type"] == "alarm_cleared")
        assert cleared.json()["code"] == "spool_full"
    finally:
        await reporter.stop()
        spool.close()
