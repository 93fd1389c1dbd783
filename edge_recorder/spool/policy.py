"""The space policy, explicit and pure (the caller supplies bytes used and disk free).

- Above the high-water mark (max_bytes * high_water_ratio) NEW encounters are refused with
  alarm "spool-high-water"; an encounter already recording carries on.
- An append that would pass the hard cap (max_bytes) fails with "spool-full" (the controller
  stops the encounter with an alarm).
- An append that would leave less than `reserve_free_bytes` free on the filesystem fails with
  "disk-reserve". When the disk is smaller than the cap, the high-water mark applies to the
  space really available (used + free - reserve), so a started encounter has room to go on.
Nothing is ever dropped or expired to make room: space only returns through acknowledgement
or an explicit `spool purge`.
"""

from __future__ import annotations

from dataclasses import dataclass

from edge_recorder.spool.errors import SpoolFull, SpoolRefused


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
    alarm: str | None  # "spool-high-water" | "spool-full" | "disk-reserve" | None


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


def space_status(limits: SpaceLimits, used: int, free: int) -> SpaceStatus:
    alarm: str | None = None
    if used >= limits.max_bytes:
        alarm = "spool-full"
    elif free < limits.reserve_free_bytes:
        alarm = "disk-reserve"
    elif used >= limits.high_water:
        alarm = "spool-high-water"
    return SpaceStatus(used, limits.max_bytes, limits.high_water, free, alarm)
