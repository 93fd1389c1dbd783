"""The space policy, explicit and pure (the caller supplies bytes used and disk free).

- Above the high-water mark (max_bytes * high_water_ratio) NEW encounters are refused with
  alarm "spool-high-water"; an encounter already recording carries on.
- An append that would pass the hard cap (max_bytes) fails with "spool-full" (the controller
  stops the encounter with an alarm).
- An append that would leave less than `reserve_free_bytes` free on the filesystem fails with
  "disk-reserve". When the disk is smaller than the cap, the high-water mark applies to the
  space really available (used + free - reserve), so a started encounter has room to go on.
- An append the spool refused (cap or reserve) or the disk refused (ENOSPC/EDQUOT: the
  spool can fill the disk itself, or the filesystem can run out before statvfs says so) is
  remembered as a `Refusal`, and `space_status` keeps reporting it ("spool-full",
  "disk-reserve", "disk-full") until the space is really back: room for the largest append
  (`RESUME_MARGIN`, ~1 MiB) under the cap, above the reserve, and above the free space seen
  at the refusal. Without it, a refusal the once-a-second check never saw (the free space
  just before the failing write looked fine) was never cleared either.
Nothing is ever dropped or expired to make room: space only returns through acknowledgement
or an explicit `spool purge`.
"""

from __future__ import annotations

from dataclasses import dataclass

from edge_recorder.spool.errors import SpoolFull, SpoolRefused
from edge_recorder.spool.records import (
    MAX_RECORD_PLAINTEXT,
    RECORD_OVERHEAD,
    SEGMENT_HEADER_BYTES,
)

# The largest single append, in a new segment: once this fits again, capture can resume.
RESUME_MARGIN = MAX_RECORD_PLAINTEXT + RECORD_OVERHEAD + SEGMENT_HEADER_BYTES


@dataclass(frozen=True)
class SpaceLimits:
    max_bytes: int
    high_water_ratio: float
    reserve_free_bytes: int

    @property
    def high_water(self) -> int:
        return int(self.max_bytes * self.high_water_ratio)


@dataclass(frozen=True)
class SpaceStatus:
    used_bytes: int
    max_bytes: int
    high_water_bytes: int
    disk_free_bytes: int
    alarm: str | None  # "spool-high-water" | "spool-full" | "disk-reserve" | "disk-full" | None


@dataclass(frozen=True)
class Refusal:
    """An append that was refused for lack of space, and the free space at that moment."""

    reason: str  # "spool-full" | "disk-reserve" | "disk-full"
    free: int

    def cleared(self, limits: SpaceLimits, used: int, free: int) -> bool:
        """Space is back for real (see the module docstring)."""
        if self.reason == "spool-full":
            return used + RESUME_MARGIN <= limits.max_bytes
        return free >= max(limits.reserve_free_bytes, self.free) + RESUME_MARGIN


def effective_cap(limits: SpaceLimits, used: int, free: int) -> int:
    """What the spool can really grow to: the cap, or less when the disk is smaller."""
    return max(0, min(limits.max_bytes, used + free - limits.reserve_free_bytes))


def check_new_encounter(limits: SpaceLimits, used: int, free: int) -> None:
    if used >= limits.high_water:
        raise SpoolRefused(
            f"spool holds {used} bytes, at or above its high-water mark of {limits.high_water}; "
            "deliver the backlog before starting a new encounter"
        )
    cap = effective_cap(limits, used, free)
    if used >= int(cap * limits.high_water_ratio):
        raise SpoolRefused(
            f"only {free} bytes free on the spool's filesystem (reserve "
            f"{limits.reserve_free_bytes}); refusing a new encounter",
            reason="disk-reserve",
        )


def check_append(limits: SpaceLimits, used: int, free: int, adding: int) -> None:
    if used + adding > limits.max_bytes:
        raise SpoolFull(
            f"spool full: {used} + {adding} bytes would pass the cap of {limits.max_bytes}"
        )
    if free - adding < limits.reserve_free_bytes:
        raise SpoolFull(
            f"disk reserve reached: {free} bytes free, reserve {limits.reserve_free_bytes}",
            reason="disk-reserve",
        )


def space_status(
    limits: SpaceLimits, used: int, free: int, refused: Refusal | None = None
) -> SpaceStatus:
    """`refused`: the last refusal not cleared yet (the caller drops it once `cleared`)."""
    alarm: str | None = None
    if used >= limits.max_bytes:
        alarm = "spool-full"
    elif free < limits.reserve_free_bytes:
        alarm = "disk-reserve"
    elif refused is not None:
        alarm = refused.reason
    elif used >= limits.high_water:
        alarm = "spool-high-water"
    return SpaceStatus(used, limits.max_bytes, limits.high_water, free, alarm)
