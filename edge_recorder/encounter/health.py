"""The device's health signals (mic, storage, spool, service, silence, delivery) as faults and
alarms, for the encounter controller.

Kept apart from the state machine because these signals come and go whatever the encounter
is doing: the controller only asks whether capture may run, whether an encounter may start
and which alarms are up. The fault precedence and the messages a clinician reads sit in one
table here, so a new fault is one line and one event case, not an edit across the handlers.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from edge_recorder.encounter import events as ev
from edge_recorder.encounter.events import CloseReason, Fault

FAULT_ORDER: tuple[Fault, ...] = ("no_mic", "storage_error", "spool_full", "service_refusing")
FAULT_MESSAGES: dict[Fault, str] = {
    "no_mic": "no microphone: check that the mic is connected",
    "storage_error": "the spool cannot be written: check the storage (see the log)",
    "spool_full": "the spool is full: nothing can be stored until the backlog is delivered",
    "service_refusing": "the service is refusing this device: check its credentials and ids",
}
Refusal = tuple[str, str]  # (code, human message)
HEALTH_EVENTS: tuple[type, ...] = (
    ev.MicLost,
    ev.MicBack,
    ev.DigitalSilence,
    ev.LiveSilent,
    ev.DeliveryDisabled,
    ev.SpoolFull,
    ev.SpoolOk,
    ev.StorageFault,
    ev.StorageOk,
    ev.ServiceRefused,
    ev.ServiceOk,
)  # the events `Health.apply` records
_INTERRUPT_REASONS: dict[Fault, CloseReason] = {
    "no_mic": "mic_lost",
    "storage_error": "storage_error",
}


@dataclass
class Health:
    """What the health events said last; changed only by `apply`."""

    faults: dict[Fault, str] = field(default_factory=dict)
    spool_hard: bool = False
    silent: bool = False
    live_silent: bool = False
    delivery_disabled: bool = False

    def apply(self, event: ev.Event) -> None:
        """Record one mic, spool, storage, service, silence or delivery signal."""
        match event:
            case ev.MicLost(detail=detail):
                self.faults["no_mic"] = detail
            case ev.SpoolFull(hard=hard):
                self.faults["spool_full"] = "hard" if hard else "high-water"
                self.spool_hard = hard
            case ev.ServiceRefused(reason=reason):
                self.faults["service_refusing"] = reason
            case ev.DigitalSilence(active=active):
                self.silent = active
            case ev.LiveSilent(active=active):
                self.live_silent = active
            case ev.DeliveryDisabled(active=active):
                self.delivery_disabled = active
            case ev.MicBack():
                self.faults.pop("no_mic", None)
            case ev.SpoolOk():
                self.faults.pop("spool_full", None)
                self.spool_hard = False
            case ev.StorageFault(reason=reason):
                self.faults["storage_error"] = reason
            case ev.StorageOk():
                self.faults.pop("storage_error", None)
            case ev.ServiceOk():
                self.faults.pop("service_refusing", None)

    def first_fault(self) -> Fault | None:
        """The fault reported as the device's error reason (the first in `FAULT_ORDER`)."""
        return next((f for f in FAULT_ORDER if f in self.faults), None)

    def start_blocked(self) -> Refusal | None:
        fault = self.first_fault()
        return None if fault is None else (fault, "cannot start: " + FAULT_MESSAGES[fault])

    def capture_blocked(self) -> Fault | None:
        """The fault that stops capture (a soft-full spool or a refusing service does not)."""
        if "no_mic" in self.faults:
            return "no_mic"
        if "storage_error" in self.faults:
            return "storage_error"
        return "spool_full" if self.spool_hard else None

    def alarms(self, recording: bool) -> frozenset[str]:
        names: set[str] = set(self.faults)
        if self.silent and recording:
            names.add("mic_silent")
        if self.live_silent:
            names.add("live_silent")
        if self.delivery_disabled:
            names.add("delivery_disabled")
        return frozenset(names)

    def interrupt_reason(self) -> CloseReason | None:
        """Why a recording must close now (capture is blocked), or None if it may run."""
        blocked = self.capture_blocked()
        return None if blocked is None else _INTERRUPT_REASONS.get(blocked, "spool_full")

    def resume_blocked(self) -> Refusal | None:
        blocked = self.capture_blocked()
        return None if blocked is None else (blocked, "cannot resume: " + FAULT_MESSAGES[blocked])
