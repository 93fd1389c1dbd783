"""Fault injection for the AWS emulator, armed with `POST /_emulator/faults`.

kinds:
- `http_error`: answer the next stream(s) with `status` and `exception` instead of 200;
- `exception`: send an exception event (`exception`) once `after_bytes` audio arrived, end;
- `drop`: abort the TCP connection once `after_bytes` audio bytes arrived on a stream;
- `refuse_resume`: answer a resumed stream (same session id) with 409 ConflictException.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from devtools.emulators.common.faults import FaultBook

KINDS = ("http_error", "exception", "drop", "refuse_resume")


@dataclass
class AwsFault:
    id: int
    kind: str
    count: int | None = 1  # streams still affected; None = until cleared
    status: int = 500
    exception: str = "InternalFailureException"
    after_bytes: int = 0


class AwsFaults(FaultBook[AwsFault]):
    def add(self, spec: dict[str, Any]) -> AwsFault:
        kind = spec.get("kind")
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {', '.join(KINDS)}")
        count = spec.get("count", 1)
        after = spec.get("after_bytes", 0)
        status = spec.get("status", 500)
        for name, value in (("after_bytes", after), ("status", status)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValueError(f"{name} must be an integer >= 0")
        if count is not None and (not isinstance(count, int) or count < 1):
            raise ValueError("count must be an integer >= 1 or null")
        exc = spec.get("exception", "InternalFailureException")
        if not isinstance(exc, str) or not exc:
            raise ValueError("exception must be a name")
        return self.arm(AwsFault(self.new_id(), kind, count, status, exc, after))

    def take(self, kind: str) -> AwsFault | None:
        """The first armed fault of `kind`, consumed once per stream."""
        return self.take_first(lambda f: f.kind == kind)
