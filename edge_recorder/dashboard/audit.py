"""The audit trail of operator commands: who asked which device to do what, and how it went.

One JSON line per command attempt (forbidden and refused ones included) in a file only the
service user can read, plus the same keys in the journal. Lines are appended with O_APPEND
and one write each, so concurrent writers never interleave and a crash loses at most the
line being written. Nothing from the device's reply is copied in beyond the outcome.
"""

from __future__ import annotations

import json
import os
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from edge_recorder.support.logs import get_logger

log = get_logger(__name__)

Outcome = Literal["ok", "refused", "timeout", "forbidden", "error"]


class AuditLog:
    """Appends audit records to `path` (created 0600 with its parent directories)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self.failures = 0

    def record(
        self,
        *,
        user: str,
        role: str,
        remote: str,
        device_id: str,
        command: str,
        request_id: str | None,
        outcome: Outcome,
    ) -> dict[str, object]:
        """Write one line and log it; a write failure is logged, never raised."""
        entry: dict[str, object] = {
            "at": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "user": user,
            "role": role,
            "remote": remote,
            "device_id": device_id,
            "command": command,
            "request_id": request_id,
            "outcome": outcome,
        }
        log.info(
            "audit",
            user=user,
            role=role,
            remote=remote,
            device_id=device_id,
            command=command,
            request_id=request_id,
            outcome=outcome,
        )
        line = (json.dumps(entry, separators=(",", ":")) + "\n").encode()
        try:
            with self._lock:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                fd = os.open(
                    self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600
                )
                try:
                    os.write(fd, line)
                finally:
                    os.close(fd)
        except OSError as exc:
            self.failures += 1
            log.error("audit log not writable", path=str(self.path), error=exc.strerror)
        return entry
