"""Fault injection: fail the next N requests, add latency, drop a stream after N bytes.

Faults are armed with `POST /_emulator/faults` and consumed by the fronts (REST, gRPC,
WebSocket, token endpoint) as matching requests arrive. Forgetting a recording acts at once
and lives in inspect.py. Nothing here touches the network: the fronts ask and apply.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, ClassVar, Generic, Protocol, TypeVar

import grpc

TARGETS = ("any", "rest", "grpc", "ws", "token")
KINDS = ("fail", "latency", "drop_stream")

# HTTP status → the gRPC code a fault answers with on the gRPC front.
GRPC_CODE_FOR_STATUS = {
    400: grpc.StatusCode.INVALID_ARGUMENT,
    401: grpc.StatusCode.UNAUTHENTICATED,
    403: grpc.StatusCode.PERMISSION_DENIED,
    404: grpc.StatusCode.NOT_FOUND,
    409: grpc.StatusCode.ABORTED,
    429: grpc.StatusCode.RESOURCE_EXHAUSTED,
    500: grpc.StatusCode.INTERNAL,
    502: grpc.StatusCode.UNAVAILABLE,
    503: grpc.StatusCode.UNAVAILABLE,
    504: grpc.StatusCode.DEADLINE_EXCEEDED,
}


@dataclass
class Fault:
    id: int
    kind: str
    target: str = "any"
    count: int | None = 1  # requests (or streams) still affected; None = until cleared
    status: int = 503
    latency_ms: int = 0
    after_bytes: int = 0
    path: str = ""  # only requests whose path / gRPC method contains this

    def matches(self, target: str, path: str) -> bool:
        if self.target == "any" and target == "token":
            return False
        return self.target in ("any", target) and self.path in path


def _int(spec: dict[str, Any], key: str, default: int | None, low: int) -> int | None:
    value = spec.get(key, default)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < low:
        raise ValueError(f"{key} must be an integer >= {low}")
    return value


class CountedFault(Protocol):
    """What every emulator's fault record has: a kind and how many more times it applies."""

    __dataclass_fields__: ClassVar[dict[str, Any]]
    kind: str
    count: int | None  # None = until cleared


FaultT = TypeVar("FaultT", bound=CountedFault)


class FaultBook(Generic[FaultT]):
    """The armed faults of one emulator (AAS, Corti, Dice, AWS): ids, consumption, listing."""

    def __init__(self) -> None:
        self._ids = itertools.count(1)
        self.active: list[FaultT] = []

    def new_id(self) -> int:
        return next(self._ids)

    def arm(self, fault: FaultT) -> FaultT:
        self.active.append(fault)
        return fault

    def take_first(self, match: Callable[[FaultT], bool]) -> FaultT | None:
        """The first armed fault that matches, used up once (removed at count 0)."""
        for fault in self.active:
            if match(fault):
                if fault.count is not None:
                    fault.count -= 1
                    if fault.count <= 0:
                        self.active.remove(fault)
                return fault
        return None

    def clear(self) -> None:
        self.active.clear()

    def describe(self) -> list[dict[str, Any]]:
        return [asdict(f) for f in self.active]


class Faults(FaultBook[Fault]):
    def add(self, spec: dict[str, Any]) -> Fault:
        """Validate a fault spec (JSON from the inspect API) and arm it."""
        kind = spec.get("kind")
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {', '.join(KINDS)}")
        target = spec.get("target", "any")
        if target not in TARGETS:
            raise ValueError(f"target must be one of {', '.join(TARGETS)}")
        path = spec.get("path", "")
        if not isinstance(path, str):
            raise ValueError("path must be a string")
        count_default = None if kind == "latency" else 1
        fault = Fault(
            id=self.new_id(),
            kind=kind,
            target=target,
            count=_int(spec, "count", count_default, 1),
            status=_int(spec, "status", 503, 400) or 503,
            latency_ms=_int(spec, "latencyMs", 0, 0) or 0,
            after_bytes=_int(spec, "afterBytes", 0, 0) or 0,
            path=path,
        )
        if fault.kind == "fail" and fault.status > 599:
            raise ValueError("status must be an HTTP status 400-599")
        if fault.kind == "drop_stream" and fault.target not in ("any", "grpc", "ws"):
            raise ValueError("drop_stream applies to grpc or ws streams")
        return self.arm(fault)

    def _take(self, kind: str, target: str, path: str) -> Fault | None:
        return self.take_first(lambda f: f.kind == kind and f.matches(target, path))

    def take_failure(self, target: str, path: str) -> Fault | None:
        return self._take("fail", target, path)

    def take_latency_s(self, target: str, path: str) -> float:
        fault = self._take("latency", target, path)
        return fault.latency_ms / 1000 if fault else 0.0

    def take_drop(self, target: str, path: str = "") -> int | None:
        """Bytes after which this new stream is to be cut, or None."""
        fault = self._take("drop_stream", target, path)
        return fault.after_bytes if fault else None
