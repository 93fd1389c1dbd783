"""One owner per spool directory (flock), and a drop box for requests from the CLI.

The daemon holds an exclusive flock on `<spool dir>/lock` for as long as its Spool is open;
the kernel drops it when the process dies, so a crash never leaves a stale lock. `spool list`
and `spool show` only read the atomically replaced ledger and need no lock. `spool retry`
takes the lock when it is free; when the daemon holds it, the request is written to
`<spool dir>/requests/` (atomically) and the daemon applies it on its next `Spool.sync()`
tick. `spool purge` needs the lock: stop the daemon first.
"""

from __future__ import annotations

import json
import os
import secrets
import time
from pathlib import Path

from edge_recorder.spool.errors import SpoolLocked
from edge_recorder.support import pidlock

LOCK_NAME = "lock"
REQUESTS_DIR = "requests"


class SpoolLock:
    def __init__(self, directory: Path) -> None:
        self.path = directory / LOCK_NAME
        self._fd = -1

    def acquire(self) -> None:
        try:
            fd = pidlock.acquire(self.path, 0o600)
        except pidlock.LockHeld as held:
            raise SpoolLocked(
                f"spool {self.path.parent} is in use by another process (pid {held.holder}), "
                "normally the running daemon"
            ) from None
        if os.geteuid() == 0:  # an operator as root must not lock the service user out
            owner = self.path.parent.stat()
            os.fchown(fd, owner.st_uid, owner.st_gid)
        self._fd = fd

    def release(self) -> None:
        pidlock.release(self._fd)
        self._fd = -1


def submit_request(directory: Path, action: str, target: str | None) -> Path:
    """Leave a request for the daemon (temp file + rename: it never sees half a request)."""
    box = directory / REQUESTS_DIR
    box.mkdir(mode=0o700, exist_ok=True)
    name = f"{time.time_ns()}-{secrets.token_hex(4)}.json"
    tmp = box / f".{name}.tmp"
    tmp.write_text(json.dumps({"action": action, "target": target}))
    tmp.chmod(0o644)  # the daemon (service user) must read what root may have written
    tmp.replace(box / name)
    return box / name


def take_requests(directory: Path) -> list[tuple[str, str | None]]:
    """Pending requests in submission order, removed as they are read; bad ones dropped."""
    box = directory / REQUESTS_DIR
    if not box.is_dir():
        return []
    out: list[tuple[str, str | None]] = []
    for path in sorted(box.glob("*.json")):
        try:
            body = json.loads(path.read_text())
            action, target = str(body["action"]), body.get("target")
            out.append((action, None if target is None else str(target)))
        except (OSError, ValueError, KeyError, TypeError):
            pass
        path.unlink(missing_ok=True)
    return out
