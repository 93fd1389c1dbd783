"""gRPC failures as `UplinkError`s: a status name and free text in, an `ErrorKind` out.

The delivery engine chooses back-off, resync or quarantine by the error's kind alone
(delivery/policy.py), so which status means "try again" and which means "stop" is decided
once, here, for every call and stream; and the few statuses whose words matter more than their
name (grpc core's own size limit, a write racing the server's abort) are told apart without a
channel to test them.
"""

from __future__ import annotations

from grpc import aio

from edge_recorder.uplinks.base import ErrorKind, UplinkError
from edge_recorder.uplinks.limits import STREAM_MESSAGE_MAX_BYTES, too_large

_KIND_BY_CODE: dict[str, ErrorKind] = {
    "UNAUTHENTICATED": ErrorKind.AUTH,
    "PERMISSION_DENIED": ErrorKind.FORBIDDEN,
    "NOT_FOUND": ErrorKind.NOT_FOUND,
    "INVALID_ARGUMENT": ErrorKind.INVALID,
    "UNIMPLEMENTED": ErrorKind.INVALID,
    "FAILED_PRECONDITION": ErrorKind.CONFLICT,
    "OUT_OF_RANGE": ErrorKind.CONFLICT,
    "ALREADY_EXISTS": ErrorKind.CONFLICT,
    "RESOURCE_EXHAUSTED": ErrorKind.THROTTLED,
    "UNAVAILABLE": ErrorKind.UNAVAILABLE,
    "DEADLINE_EXCEEDED": ErrorKind.UNAVAILABLE,
    "CANCELLED": ErrorKind.UNAVAILABLE,
    "ABORTED": ErrorKind.UNAVAILABLE,
    "INTERNAL": ErrorKind.SERVER,
    "UNKNOWN": ErrorKind.SERVER,
    "DATA_LOSS": ErrorKind.SERVER,
}


def error_from_status(code_name: str, details: str | None) -> UplinkError:
    """Map a gRPC status (by name, e.g. "PERMISSION_DENIED") to an `UplinkError`."""
    kind = _KIND_BY_CODE.get(code_name, ErrorKind.SERVER)
    return UplinkError(kind, details or code_name, transport="grpc", status=code_name)


# grpc.aio replaces the server's status with this when a write hits a stream the server has
# already ended (a race with the server's abort): the link broke, the server did not fail.
_CORE_WRITE_FAILURE = "Internal error from Core"


# grpc core's words when a received message exceeds `grpc.max_receive_message_length`.
_TOO_LARGE = "Received message larger than max"


def error_from_rpc(exc: aio.AioRpcError) -> UplinkError:
    name, details = exc.code().name, exc.details()
    if name == "RESOURCE_EXHAUSTED" and _TOO_LARGE in (details or ""):
        # The device's own limit, not the server's throttling: the server answered something
        # it should not have, so it is a retryable PROTOCOL error with its own words.
        return too_large(
            "a message from the gRPC service", STREAM_MESSAGE_MAX_BYTES, "grpc", status=name
        )
    if name == "INTERNAL" and details == _CORE_WRITE_FAILURE:
        return UplinkError(
            ErrorKind.UNAVAILABLE,
            "the stream broke while sending (the server ended it)",
            transport="grpc",
            status=name,
        )
    return error_from_status(name, details)
