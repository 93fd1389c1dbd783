"""Pure rules for what the service provably holds and where a broken stream continues.

The AWS streams send no byte acknowledgements. What the service provably processed is the
audio up to the latest transcript segment's end offset; offsets are taken as positions on the
*session's* audio timeline (all streams of the session, in order; inferred, see docs/services.md).
A resumed stream starts at recording byte W after earlier streams of the session sent at most
`prior_sent` bytes, so session byte t maps to recording byte >= W + t - prior_sent: using the
upper bound `prior_sent` keeps the watermark conservative (never ahead of the truth).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class SessionRecord:
    """One recording's AWS session, kept in UplinkState (ids and counts only, no PHI)."""

    session_id: str
    opened_at: float  # epoch seconds of the session's first stream
    prior_sent: int  # upper bound of the bytes all earlier streams of the session sent

    def dump(self) -> str:
        return f"{self.session_id} {self.opened_at:.3f} {self.prior_sent}"

    @classmethod
    def load(cls, text: str | None) -> SessionRecord | None:
        if not text:
            return None
        try:
            sid, opened, sent = text.split()
            return cls(sid, float(opened), int(sent))
        except ValueError:
            return None


@dataclass(frozen=True)
class StreamPlan:
    session_id: str
    start: int  # recording byte the stream starts at
    resumed: bool
    prior_sent: int


def plan_stream(
    record: SessionRecord | None,
    starting_offset: int,
    now: float,
    window_s: float,
    new_id: str,
) -> StreamPlan | None:
    """Resume the recording's session at `starting_offset` when allowed, else a new session.

    None: the device confirmed bytes of a session that can no longer be resumed (window over or
    no record of it): the recording must restart from byte 0 in a new session.
    """
    if starting_offset == 0:
        return StreamPlan(new_id, 0, False, 0)
    if record is None or now - record.opened_at >= window_s:
        return None
    return StreamPlan(record.session_id, starting_offset, True, record.prior_sent)


def confirmed_offset(
    end_s: float, *, byte_rate: int, block_align: int, start: int, prior_sent: int, sent_to: int
) -> int:
    """Recording bytes provably processed when a segment ends at `end_s` (session seconds)."""
    session_bytes = math.floor(end_s * byte_rate)
    session_bytes -= session_bytes % block_align
    return max(start, min(sent_to, start + session_bytes - prior_sent))


def coverage(spans: Iterable[tuple[int, int]], length: int) -> tuple[list[tuple[int, int]], int]:
    """Gaps in [0, length) left by half-open `spans`, and the bytes covered more than once."""
    gaps: list[tuple[int, int]] = []
    overlap, reach = 0, 0
    for start, end in sorted(spans):
        if start > reach:
            gaps.append((reach, min(start, length)))
        overlap += max(0, min(end, reach) - start)
        reach = max(reach, end)
    if reach < length:
        gaps.append((reach, length))
    return gaps, overlap
