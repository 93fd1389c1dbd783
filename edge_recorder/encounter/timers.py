"""The open encounter's bookkeeping and timers: maximum duration and no-speech auto-stop.

Pure arithmetic on times the controller passes in. Both the "when is the next deadline"
question (for the daemon's sleep) and the "what is due now" question (on `Tick`) use the
same absolute times, so a tick sent exactly at the announced deadline always fires it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from edge_recorder.encounter.events import CloseReason, Limits, WarningKind


@dataclass
class OpenEncounter:
    correlation_id: str
    started_at: float
    last_activity: float  # start, resume or speech: the no-speech clock runs from here
    seq: int = 0  # of the latest recording (1-based; 0 before the first)
    guid: str = ""
    recording_since: float | None = None  # None while not capturing
    recorded_s: float = 0.0  # closed recordings only
    warned: set[WarningKind] = field(default_factory=set)

    def recorded(self, now: float) -> float:
        since = self.recording_since
        return self.recorded_s + (now - since if since is not None else 0.0)

    def close_at(self, limits: Limits) -> float | None:
        """When recorded time reaches the maximum (pauses do not count; None while paused)."""
        if self.recording_since is None:
            return None
        return self.recording_since + limits.max_duration_s - self.recorded_s

    def stop_at(self, limits: Limits) -> float | None:
        """When the no-speech auto-stop ends the encounter (None when switched off)."""
        if limits.auto_stop_after_s <= 0:
            return None
        return self.last_activity + limits.auto_stop_after_s

    def _timers(self, limits: Limits) -> list[tuple[float, CloseReason, WarningKind, float]]:
        timers: list[tuple[float, CloseReason, WarningKind, float]] = []
        close_at, stop_at = self.close_at(limits), self.stop_at(limits)
        if close_at is not None:
            timers.append((close_at, "max_duration", "max_duration", limits.warn_before_s))
        if stop_at is not None:
            timers.append((stop_at, "no_speech", "auto_stop", limits.auto_stop_warning_s))
        return timers

    def next_deadline(self, limits: Limits) -> float | None:
        times: list[float] = []
        for at, _, kind, lead in self._timers(limits):
            times.append(at)
            if lead > 0 and kind not in self.warned:
                times.append(at - lead)
        return min(times, default=None)

    def due(
        self, now: float, limits: Limits
    ) -> tuple[CloseReason | None, list[tuple[WarningKind, float]]]:
        """The reason to end the encounter now, if any, else the warnings now due."""
        warnings: list[tuple[WarningKind, float]] = []
        for at, reason, kind, lead in self._timers(limits):
            if now >= at:
                return reason, []
            if lead > 0 and now >= at - lead:
                warnings.append((kind, at - now))
        return None, warnings
