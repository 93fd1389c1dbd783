"""The encounter controller: a pure state machine between the inputs and the recorder.

No I/O and no clock reads. Every call gets `now` (monotonic seconds) and returns an `Outcome`
whose effects the daemon carries out in order, so every transition is one table row in the
tests and the daemon, the demo and the tests all drive the same logic. An event that makes
no sense in the current state gets a refusal with a reason, never an exception.

Phases: idle → recording ⇄ paused → stopping → idle. A fault that blocks capture (mic lost,
spool completely full) *interrupts* an open encounter (reported as state "error") and it
resumes by itself, with a new recording, once the fault clears. Faults with no encounter
open make the device report "error" and refuse new starts until they clear.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Callable
from dataclasses import replace
from typing import Any, Literal

from edge_recorder.encounter import events as ev
from edge_recorder.encounter.events import (
    Alarm,
    BeginEncounter,
    CloseReason,
    CloseRecording,
    Effect,
    EndEncounter,
    Fault,
    Indicator,
    IndicatorName,
    Limits,
    OpenRecording,
    Outcome,
    Sound,
    Source,
    Warn,
    WarnCleared,
    WarningKind,
)
from edge_recorder.encounter.health import HEALTH_EVENTS, Health, Refusal
from edge_recorder.encounter.indicator import choose_indicator
from edge_recorder.encounter.timers import OpenEncounter
from edge_recorder.status import (
    CommandRequest,
    DeviceStatus,
    EncounterRef,
    EncounterState,
    StartContext,
    encounter_ref,
)

__all__ = ["EncounterController", "Limits", "Outcome"]

Phase = Literal["idle", "recording", "paused", "stopping", "interrupted"]
Refused = Refusal | None
Fx = list[Effect]


Handler = Callable[[Any, float, list[Effect]], Refusal | None]


class EncounterController:
    """Feed it events with `handle(event, now)`; carry out the returned effects in order."""

    def __init__(
        self,
        limits: Limits,
        *,
        new_uuid: Callable[[], uuid.UUID] = uuid.uuid4,
        encounter_ref: EncounterRef | None = None,
    ):
        self._limits = limits
        self._new_uuid = new_uuid
        # The daemon passes the spool's keyed ref (stable across restarts); without one, a
        # key of this process only: still never the bare hash of a guessable id.
        self.ref: EncounterRef = encounter_ref or _process_ref()
        self._phase: Phase = "idle"
        self._enc: OpenEncounter | None = None
        self._health = Health()
        self._online = False
        self._backlog = 0
        self._identify_until: float | None = None
        self._shown: IndicatorName = "idle"
        self._alarms: frozenset[str] = frozenset()
        self._dispatch: dict[type, Handler] = {
            ev.RecordPressed: self._on_record_pressed,
            ev.RecordHeld: self._on_toggle_pause,
            ev.PrivacyPressed: self._on_toggle_pause,
            ev.Start: self._on_start,
            ev.Stop: self._on_stop,
            ev.Pause: self._on_pause,
            ev.Resume: self._on_resume,
            ev.Identify: self._on_identify,
            ev.Shutdown: self._on_shutdown,
            ev.Tick: self._on_tick,
            ev.SpeechDetected: self._on_speech,
            **dict.fromkeys(HEALTH_EVENTS, self._on_health),
            ev.Closed: self._on_closed,
            ev.Uplink: self._on_uplink,
            ev.ServiceLimits: self._on_limits,
        }

    # --- public API ------------------------------------------------------------------------

    @property
    def phase(self) -> Phase:
        return self._phase

    @property
    def limits(self) -> Limits:
        return self._limits

    @property
    def state(self) -> EncounterState:
        phase = self._phase
        if phase == "interrupted" or (phase == "idle" and self._health.faults):
            return "error"
        return phase

    @property
    def error_reason(self) -> Fault | None:
        if self.state != "error":
            return None
        if self._phase == "interrupted":
            return self._health.capture_blocked() or "spool_full"
        return self._health.first_fault()

    @property
    def indicator(self) -> IndicatorName:
        """The pattern last asked for with an `Indicator` effect (the LEDs show this)."""
        return self._shown

    def handle(self, event: ev.Event, now: float) -> Outcome:
        handler = self._dispatch.get(type(event))
        effects: list[Effect] = []
        refusal = (
            ("unknown_event", f"unknown event {type(event).__name__}")
            if handler is None
            else handler(event, now, effects)
        )
        if refusal is not None:
            button = isinstance(event, ev.BUTTON_EVENTS)
            cue: tuple[Effect, ...] = (Sound("refused"),) if button else ()
            return self._outcome(False, cue, refusal)
        self._sync(effects, now)
        return self._outcome(True, tuple(effects), None)

    def command(self, request: CommandRequest, now: float, source: Source = "ctl") -> Outcome:
        """A control-socket or MQTT command as an event; non-encounter commands are refused."""
        events: dict[str, ev.Event] = {
            "start": ev.Start(context=request.context, source=source),
            "stop": ev.Stop(source),
            "pause": ev.Pause(source),
            "resume": ev.Resume(source),
            "identify": ev.Identify(source),
        }
        event = events.get(request.name)
        if event is None:
            refusal = ("unsupported", f"'{request.name}' is not an encounter command")
            return self._outcome(False, (), refusal)
        return self.handle(event, now)

    def next_deadline(self) -> float | None:
        """When the next timer falls due: the daemon sends `Tick` then (or earlier)."""
        times = [] if self._identify_until is None else [self._identify_until]
        if self._enc is not None and self._phase != "stopping":
            deadline = self._enc.next_deadline(self._limits)
            times += [] if deadline is None else [deadline]
        return min(times, default=None)

    def device_status(self, now: float, base: DeviceStatus | None = None) -> DeviceStatus:
        """`base` (backlog, mic, online from elsewhere) with the encounter fields filled in."""
        enc = self._enc
        update: dict[str, Any] = {
            "state": self.state,
            "error_reason": self.error_reason,
            "alarms": sorted(self._alarms),
            "correlation_id": enc.correlation_id if enc else None,
            "encounter_ref": self.ref(enc.correlation_id) if enc else None,
            "recording_seq": enc.seq if enc and enc.seq else None,
            "encounter_elapsed_s": round(now - enc.started_at, 3) if enc else None,
            "warnings": sorted(enc.warned) if enc else [],
        }
        return (base or DeviceStatus()).model_copy(update=update)

    # --- helpers ---------------------------------------------------------------------------

    def _outcome(self, ok: bool, effects: tuple[Effect, ...], refusal: Refusal | None) -> Outcome:
        enc = self._enc
        return Outcome(
            ok=ok,
            state=self.state,
            effects=effects,
            code=refusal[0] if refusal else None,
            error=refusal[1] if refusal else None,
            correlation_id=enc.correlation_id if enc else None,
            encounter_ref=self.ref(enc.correlation_id) if enc else None,
            recording_seq=enc.seq if enc and enc.seq else None,
        )

    def _sync(self, effects: list[Effect], now: float) -> None:
        """Append Alarm and Indicator effects for whatever changed since the last sync."""
        wanted = self._health.alarms(recording=self._phase == "recording")
        effects.extend(Alarm(name, False) for name in sorted(self._alarms - wanted))
        raised = sorted(wanted - self._alarms)
        effects.extend(Alarm(name, True) for name in raised)
        if raised:
            effects.append(Sound("alarm"))
        self._alarms = wanted
        pattern = choose_indicator(
            self._phase,
            identify=self._identify_until is not None and now < self._identify_until,
            warned=bool(self._enc and self._enc.warned),
            alarmed=bool(self._alarms),
            faulted=bool(self._health.faults) or self._health.delivery_disabled,
            backlog=self._backlog,
            online=self._online,
        )
        if pattern != self._shown:
            self._shown = pattern
            effects.append(Indicator(pattern))

    def _begin(self, context: StartContext | None, now: float, effects: list[Effect]) -> None:
        given = context.correlation_id if context else None
        cid = given or str(self._new_uuid())
        self._enc = OpenEncounter(correlation_id=cid, started_at=now, last_activity=now)
        effects.append(BeginEncounter(cid, context))
        self._open(now, effects)

    def _open(self, now: float, effects: list[Effect]) -> None:
        enc = self._encounter()
        enc.seq += 1
        enc.guid = str(self._new_uuid())
        enc.recording_since = enc.last_activity = now
        self._clear_warning("auto_stop", effects)
        self._phase = "recording"
        self._sync(effects, now)  # the light goes on before capture starts
        effects += [OpenRecording(enc.correlation_id, enc.seq, enc.guid), Sound("start")]

    def _close(self, now: float, effects: list[Effect], reason: CloseReason, to: Phase) -> None:
        enc = self._encounter()
        if enc.recording_since is not None:
            enc.recorded_s += now - enc.recording_since
            enc.recording_since = None
            effects.append(CloseRecording(enc.correlation_id, enc.seq, enc.guid, reason))
        self._phase = to

    def _end(self, now: float, effects: list[Effect], reason: CloseReason) -> None:
        enc = self._encounter()
        self._close(now, effects, reason, "stopping")
        for kind in sorted(enc.warned):
            effects.append(WarnCleared(kind))
        enc.warned.clear()
        effects += [EndEncounter(enc.correlation_id, enc.seq, reason), Sound("stop")]

    def _warn(self, kind: WarningKind, remaining: float, effects: list[Effect]) -> None:
        enc = self._encounter()
        if kind not in enc.warned:
            enc.warned.add(kind)
            effects += [Warn(kind, round(max(remaining, 0.0), 3)), Sound("warning")]

    def _clear_warning(self, kind: WarningKind, effects: list[Effect]) -> None:
        enc = self._encounter()
        if kind in enc.warned:
            enc.warned.discard(kind)
            effects.append(WarnCleared(kind))

    def _encounter(self) -> OpenEncounter:
        assert self._enc is not None, "phase implies an open encounter"
        return self._enc

    def _reconcile(self, now: float, effects: list[Effect]) -> None:
        """Interrupt capture when a fault blocks it; resume by itself once it clears."""
        reason = self._health.interrupt_reason()
        if self._phase == "recording" and reason is not None:
            self._close(now, effects, reason, "interrupted")
        elif self._phase == "interrupted" and reason is None:
            self._open(now, effects)

    # --- event handlers: return a refusal or None after appending effects ------------------

    def _busy(self) -> Refusal | None:
        if self._phase == "stopping":
            return "busy_stopping", "the previous encounter is still closing; try again"
        if self._phase == "idle":
            return "no_encounter", "no encounter in progress"
        return None

    def _on_record_pressed(self, _: ev.RecordPressed, now: float, fx: Fx) -> Refused:
        if self._phase in ("idle", "stopping"):
            return self._on_start(ev.Start(source="button"), now, fx)
        return self._on_stop(ev.Stop("button"), now, fx)

    def _on_toggle_pause(self, _: object, now: float, fx: Fx) -> Refused:
        if self._phase == "paused":
            return self._on_resume(ev.Resume("button"), now, fx)
        return self._on_pause(ev.Pause("button"), now, fx)

    def _on_start(self, event: ev.Start, now: float, fx: Fx) -> Refused:
        if self._phase == "stopping":
            return self._busy()
        if self._phase != "idle":
            return "already_active", "an encounter is already in progress; stop it first"
        blocked = self._health.start_blocked()
        if blocked is None:
            self._begin(event.context, now, fx)
        return blocked

    def _on_stop(self, _: ev.Stop, now: float, fx: Fx) -> Refused:
        if self._phase == "stopping":
            return "already_stopping", "the encounter is already stopping"
        refusal = self._busy()
        if refusal is None:
            self._end(now, fx, "stop")
        return refusal

    def _on_pause(self, _: ev.Pause, now: float, fx: Fx) -> Refused:
        if self._phase == "paused":
            return "already_paused", "the encounter is already paused"
        refusal = self._busy()
        if refusal is None:  # recording, or interrupted (pausing stops the auto-resume)
            self._close(now, fx, "pause", "paused")
            fx.append(Sound("pause"))
        return refusal

    def _on_resume(self, _: ev.Resume, now: float, fx: Fx) -> Refused:
        if self._phase == "recording":
            return "already_recording", "the encounter is already recording"
        blocked = self._health.resume_blocked()
        if self._phase == "interrupted" and blocked is not None:
            return blocked
        refusal = self._busy()
        if refusal is not None:
            return refusal
        if blocked is not None:
            return blocked
        self._open(now, fx)
        return None

    def _on_identify(self, _: ev.Identify, now: float, fx: Fx) -> None:
        self._identify_until = now + self._limits.identify_s
        fx.append(Sound("identify"))

    def _on_shutdown(self, _: ev.Shutdown, now: float, fx: Fx) -> None:
        if self._phase in ("recording", "paused", "interrupted"):
            self._end(now, fx, "shutdown")

    def _on_tick(self, _: ev.Tick, now: float, fx: Fx) -> None:
        if self._identify_until is not None and now >= self._identify_until:
            self._identify_until = None
        enc = self._enc
        if enc is None or self._phase == "stopping":
            return
        reason, warnings = enc.due(now, self._limits)
        if reason is not None:
            self._end(now, fx, reason)
        for kind, remaining in warnings:
            self._warn(kind, remaining, fx)

    def _on_speech(self, _: ev.SpeechDetected, now: float, fx: Fx) -> None:
        if self._phase == "recording":
            self._encounter().last_activity = now
            self._clear_warning("auto_stop", fx)

    def _on_health(self, event: ev.Event, now: float, fx: Fx) -> None:
        """Mic, spool and service signals: update the faults, then interrupt or resume."""
        self._health.apply(event)
        self._reconcile(now, fx)

    def _on_closed(self, _: ev.Closed, now: float, fx: Fx) -> Refused:
        if self._phase != "stopping":
            return "nothing_closing", "no encounter is being closed"
        self._enc = None
        self._phase = "idle"
        return None

    def _on_uplink(self, event: ev.Uplink, now: float, fx: Fx) -> Refused:
        if event.backlog < 0:
            return "invalid", "backlog cannot be negative"
        self._online, self._backlog = event.online, event.backlog
        return None

    def _on_limits(self, event: ev.ServiceLimits, now: float, fx: Fx) -> Refused:
        if not event.max_duration_s > 0 or not event.warn_before_s >= 0:
            return "invalid", "service limits must be positive"
        self._limits = replace(
            self._limits, max_duration_s=event.max_duration_s, warn_before_s=event.warn_before_s
        )
        return None


def _process_ref() -> EncounterRef:
    key = secrets.token_bytes(32)
    return lambda correlation_id: encounter_ref(correlation_id, key)
