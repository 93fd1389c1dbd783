"""AAS REST chunk numbering: pure, so a retry after a crash sends identical chunks.

Chunk 1 carries only metadata; audio starts at chunk 2, `rest_chunk_bytes` each. The ids follow
from byte offsets alone, so `storeChunk` retries are idempotent.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


def chunk_id_for_offset(offset: int, chunk_bytes: int) -> int:
    """REST chunk id holding byte `offset`: chunk 1 is metadata-only, audio starts at 2."""
    if offset < 0 or chunk_bytes <= 0:
        raise ValueError("offset must be >= 0 and chunk_bytes > 0")
    return 2 + offset // chunk_bytes


def total_chunks(length: int, chunk_bytes: int) -> int:
    """`totalChunks` for a recording of `length` bytes; counts the metadata chunk 1 too."""
    if length < 0 or chunk_bytes <= 0:
        raise ValueError("length must be >= 0 and chunk_bytes > 0")
    return 1 + math.ceil(length / chunk_bytes)


@dataclass(frozen=True)
class ChunkSpan:
    """One REST chunk: its id and the byte range [start, end) of the recording it carries."""

    chunk_id: int
    start: int
    end: int
    is_last: bool

    @property
    def size(self) -> int:
        return self.end - self.start


def chunk_plan(length: int, chunk_bytes: int) -> list[ChunkSpan]:
    """Every chunk of a closed recording, chunk 1 (metadata, empty) first."""
    count = total_chunks(length, chunk_bytes)
    spans = [ChunkSpan(1, 0, 0, count == 1)]
    for chunk_id in range(2, count + 1):
        start = (chunk_id - 2) * chunk_bytes
        spans.append(
            ChunkSpan(chunk_id, start, min(start + chunk_bytes, length), chunk_id == count)
        )
    return spans
