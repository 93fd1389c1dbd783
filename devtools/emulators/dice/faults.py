"""Fault injection for the Dice emulator, armed with `POST /_emulator/faults`.

kinds: `fail` (target `token` or `ws`: answer the sign-in / the upgrade with `status`),
`drop_stream` (cut the connection, no close frame, once the stream received `afterBytes`),
`error_msg` (send `error_msg` with `message` after `afterBytes`, then close). `count` streams
or requests are affected (default 1). `revoke_tokens` and `expire_tokens` act at once and are
handled by the server.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from devtools.emulators.common.faults import FaultBook

KINDS = ("fail", "drop_stream", "error_msg")


@dataclass
class Fault:
    id: int
    kind: str
    target: str = "ws"
    count: int | None = 1
    status: int = 503
    after_bytes: int = 0
    message: str = "injected error"


def _int(spec: dict[str, Any], key: str, default: int, low: int, high: int) -> int:
    value = spec.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise ValueError(f"{key} must be an integer in [{low}, {high}]")
    return value


class Faults(FaultBook[Fault]):
    def add(self, spec: dict[str, Any]) -> Fault:
        kind = spec.get("kind")
        if kind not in KINDS:
            raise ValueError(
                f"kind must be one of {', '.join(KINDS)}, revoke_tokens, expire_tokens"
            )
        target = spec.get("target", "ws")
        if target not in ("ws", "token") or (kind != "fail" and target != "ws"):
            raise ValueError("target must be 'ws' or 'token' ('token' only for kind=fail)")
        message = spec.get("message", "injected error")
        if not isinstance(message, str):
            raise ValueError("message must be a string")
        fault = Fault(
            id=self.new_id(),
            kind=kind,
            target=target,
            count=_int(spec, "count", 1, 1, 1_000_000),
            status=_int(spec, "status", 503, 400, 599),
            after_bytes=_int(spec, "afterBytes", 0, 0, 2**40),
            message=message,
        )
        return self.arm(fault)

    def take(self, kind: str, target: str = "ws") -> Fault | None:
        return self.take_first(lambda f: f.kind == kind and f.target == target)
