"""Pure rules of the service: byte offsets of streamed chunks and REST chunk reconciliation.

Kept apart from persistence so each rule is tested directly and the gRPC, WebSocket and REST
fronts share one definition of "idempotent", "conflict" and "gap".
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection
from uuid import UUID


class RuleError(Exception):
    """A request the service refuses; `kind` picks the status code in each front."""

    kind = "invalid"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class OffsetGap(RuleError):
    kind = "gap"


class OffsetConflict(RuleError):
    kind = "conflict"


class ChunkConflict(RuleError):
    kind = "conflict"


class TotalMismatch(RuleError):
    kind = "invalid"


class NotFound(RuleError):
    kind = "not_found"


class WrongState(RuleError):
    kind = "state"


def plan_write(held: int, offset: int, data: bytes, existing: Callable[[int, int], bytes]) -> bytes:
    """The part of `data` (at byte `offset`) to append to a recording holding `held` bytes.

    Bytes that overlap what is stored must equal it (a resent chunk is acknowledged and
    ignored); a chunk past the end would leave a hole, so it is refused.
    """
    if offset < 0:
        raise OffsetGap(f"DataStart {offset} is negative")
    if offset > held:
        raise OffsetGap(f"DataStart {offset} leaves a gap: the server holds {held} bytes")
    overlap = min(held - offset, len(data))
    if overlap and existing(offset, overlap) != data[:overlap]:
        raise OffsetConflict(
            f"DataStart {offset}: {overlap} bytes differ from the bytes already stored there"
        )
    return data[overlap:]


def check_chunk(
    chunk_id: int,
    is_last: bool,
    received: Collection[int],
    last_chunk_id: int | None,
    total_chunks: int | None,
) -> None:
    """Refuse a REST chunk that contradicts the declared shape of its recording."""
    if chunk_id < 1:
        raise RuleError("chunkId must be a positive integer (> 0)")
    if total_chunks is not None and chunk_id > total_chunks:
        raise TotalMismatch(
            f"chunkId {chunk_id} is beyond totalChunks {total_chunks} declared at finalizeUpload"
        )
    if last_chunk_id is not None and chunk_id > last_chunk_id:
        raise TotalMismatch(f"chunkId {chunk_id} comes after chunk {last_chunk_id} marked isLast")
    if is_last:
        if total_chunks is not None and chunk_id != total_chunks:
            raise TotalMismatch(
                f"chunk {chunk_id} is marked isLast but finalizeUpload declared "
                f"totalChunks {total_chunks}"
            )
        beyond = [c for c in received if c > chunk_id]
        if beyond:
            raise TotalMismatch(
                f"chunk {chunk_id} is marked isLast but chunk {max(beyond)} was already uploaded"
            )


def check_total(total_chunks: int, received: Collection[int], last_chunk_id: int | None) -> None:
    """Refuse a finalize whose totalChunks disagrees with the chunks that arrived."""
    beyond = [c for c in received if c > total_chunks]
    if beyond:
        raise TotalMismatch(
            f"totalChunks {total_chunks} disagrees with the chunks received: "
            f"chunk {max(beyond)} was uploaded"
        )
    if last_chunk_id is not None and last_chunk_id != total_chunks:
        raise TotalMismatch(
            f"totalChunks {total_chunks} disagrees with the chunks received: "
            f"chunk {last_chunk_id} was marked isLast"
        )


def missing_chunks(total_chunks: int, received: Collection[int]) -> list[int]:
    return [c for c in range(1, total_chunks + 1) if c not in received]


_CORRELATION_ID = re.compile(r"^[A-Za-z0-9_\-|]{1,128}$")


def valid_correlation_id(value: object) -> bool:
    """[doc] letters, digits, `_`, `-`, `|`; at most 128 characters."""
    return isinstance(value, str) and bool(_CORRELATION_ID.match(value))


def valid_uuid(value: object) -> bool:
    if not isinstance(value, str):
        return False
    try:
        UUID(value)
    except ValueError:
        return False
    return True


def positive_int(value: object) -> bool:
    """A JSON integer > 0 that fits int32 (booleans are not integers here)."""
    return isinstance(value, int) and not isinstance(value, bool) and 0 < value <= 2**31 - 1


def finalize_errors(body: dict[str, object]) -> list[str]:
    """The seed's validation rules for finalizeUpload, in the seed's order."""
    errors = []
    for key in ("productId", "partnerId", "customerId"):
        if not valid_uuid(body.get(key)):
            errors.append(f"{key} is required (valid UUID)")
    cid = body.get("correlationId")
    if not isinstance(cid, str) or not cid:
        errors.append("correlationId is required (non-empty string)")
    for key in ("recordingId", "totalChunks"):
        if not positive_int(body.get(key)):
            errors.append(f"{key} must be a positive integer (> 0)")
    skip = body.get("skipAmbientSessionExistence", False)
    if not isinstance(skip, bool):
        errors.append("skipAmbientSessionExistence must be a boolean")
    return errors


def join_errors(errors: list[str]) -> str:
    """[doc] several validation errors are concatenated into one string (separator ours)."""
    return "; ".join(errors)
