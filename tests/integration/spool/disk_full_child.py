"""Fills a real, small filesystem with a spool, then frees space, and reports what the spool's
space check said at each step (one JSON line). For `test_disk_full.py`.

Run as `unshare --mount [--map-root-user] python -m tests.integration.spool.disk_full_child
WORKDIR SCENARIO`: in a private mount namespace it mounts a tmpfs on WORKDIR/disk (gone with
the process, invisible to everyone else). Scenarios:
- `blocks`: the spool itself fills a 3 MiB disk (reserve 0), with a 1.2 MB file beside it;
- `inodes`: the disk runs out of inodes while blocks are free, so the kernel says ENOSPC
  although statvfs shows room (the space check alone cannot see it).
Then the 1.2 MB file (and the inode fillers) are deleted, as an operator, or delivery
reclaiming delivered audio, would.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

from edge_recorder.config.model import SpoolConfig
from edge_recorder.spool import Spool, SpoolError, SpoolFull

BALLAST = 1_200_000
CHUNK = 3200


def _mount(disk: Path, options: str) -> None:
    disk.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(disk)], check=True)


def _fill_inodes(disk: Path) -> int:
    """Empty files until the filesystem has no inode left."""
    count = 0
    while True:
        try:
            (disk / f"inode-{count}").touch()
        except OSError as exc:
            if exc.errno != errno.ENOSPC:
                raise
            return count
        count += 1


def run(workdir: Path, scenario: str) -> dict[str, Any]:
    disk = workdir / "disk"
    _mount(disk, "size=3m,nr_inodes=64" if scenario == "inodes" else "size=3m")
    (disk / "ballast").write_bytes(b"\0" * BALLAST)
    config = SpoolConfig(
        dir=disk / "spool",
        key_file=workdir / "spool.key",
        reserve_free_bytes=0,
        segment_bytes=32 * 1024,
        fsync_interval_s=0.05,
    )
    out: dict[str, Any] = {"scenario": scenario}
    spool = Spool.open(config, environ={})
    try:
        writer = spool.begin_recording(
            "enc-1", 1, str(uuid.uuid4()), codec="pcm16", sample_rate=16000
        )
        out["alarm_before"] = spool.space().alarm
        if scenario == "inodes":
            writer.append(b"\1" * CHUNK)
            out["inodes_taken"] = _fill_inodes(disk)
        appended = 0
        try:
            while True:
                writer.append(os.urandom(CHUNK))
                appended += CHUNK
        except SpoolFull as exc:
            out["refused"] = exc.reason
        out["appended"] = appended
        space = spool.space()  # what the daemon's once-a-second check sees
        out["alarm_after_refusal"], out["free_at_refusal"] = space.alarm, space.disk_free_bytes
        out["alarm_checked_again"] = spool.space().alarm
        try:
            writer.close("spool_full")
        except SpoolError as exc:  # the ledger cannot be saved on a full disk either
            out["close_error"] = exc.reason
        (disk / "ballast").unlink()  # 1.2 MB come back
        for extra in disk.glob("inode-*"):  # and the files that took the inodes go too
            extra.unlink()
        space = spool.space()
        out["alarm_after_free"], out["free_after"] = space.alarm, space.disk_free_bytes
        again = spool.begin_recording(
            "enc-2", 1, str(uuid.uuid4()), codec="pcm16", sample_rate=16000
        )
        again.append(b"\2" * CHUNK)  # the space is really there
        again.close()
        out["recorded_after_free"] = spool.recording(again.recording_id).length
    finally:
        with contextlib.suppress(SpoolError):
            spool.close()
    return out


if __name__ == "__main__":
    print(json.dumps(run(Path(sys.argv[1]), sys.argv[2])), flush=True)
