"""The vocabulary of the encounter controller: the events it accepts, the effects it asks
for, its timer settings (`Limits`) and what each event did (`Outcome`).

Plain frozen dataclasses (no behaviour beyond conversions), so the panel, the control
socket, MQTT and the daemon can build events and interpret effects without the state machine.
Patient context rides in `Start` and `BeginEncounter` but is left out of their repr, so an
accidental log line or assertion message cannot print it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from edge_recorder.config.model import Config
from edge_recorder.status import CommandResult, EncounterState, StartContext

Fault = Literal["no_mic", "storage_error", "spool_full", "service_refusing"]
WarningKind = Literal["max_duration", "auto_stop"]
CloseReason = Literal[
    "stop",
    "pause",
    "max_duration",
    "no_speech",
    "mic_lost",
    "storage_error",
    "spool_full",
    "shutdown",
]
IndicatorName = Literal[
    "idle",
    "recording",
    "recording_warning",
    "recording_alarm",
    "recording_identify",
    "paused",
    "stopping",
    "delivering",
    "offline_buffering",
    "warning",
    "error",
    "identify",
]
SoundName = Literal["start", "pause", "stop", "warning", "alarm", "identify", "refused"]
Source = Literal["button", "ctl", "mqtt", "daemon"]


# --- events: inputs from the panel ------------------------------------------------------


@dataclass(frozen=True)
class RecordPressed:
    """Record button pressed (a short press when the hold action is enabled)."""


@dataclass(frozen=True)
class RecordHeld:
    """Record button held for `panel.hold_time_s` (only sent when hold_action = 'pause')."""


@dataclass(frozen=True)
class PrivacyPressed:
    """Privacy button pressed: pause, or resume a paused encounter."""


# --- events: commands (control socket, MQTT) ----------------------------------------------


@dataclass(frozen=True)
class Start:
    context: StartContext | None = field(default=None, repr=False)
    source: Source = "ctl"


@dataclass(frozen=True)
class Stop:
    source: Source = "ctl"


@dataclass(frozen=True)
class Pause:
    source: Source = "ctl"


@dataclass(frozen=True)
class Resume:
    source: Source = "ctl"


@dataclass(frozen=True)
class Identify:
    source: Source = "ctl"


@dataclass(frozen=True)
class Shutdown:
    """The daemon is stopping (SIGTERM): close what is open with reason 'shutdown'."""


# --- events: signals from the pipeline -----------------------------------------------------


@dataclass(frozen=True)
class Tick:
    """Time passed; timers (warnings, auto-stop, maximum duration, identify) are checked."""


@dataclass(frozen=True)
class SpeechDetected:
    """The VAD heard speech now; it resets the no-speech auto-stop clock."""


@dataclass(frozen=True)
class MicLost:
    detail: str = ""


@dataclass(frozen=True)
class MicBack:
    pass


@dataclass(frozen=True)
class DigitalSilence:
    """The mic delivers all-zero/constant samples (`active`) or real signal again."""

    active: bool


@dataclass(frozen=True)
class LiveSilent:
    """The live service answers nothing (`active`): the audio goes by store-and-forward, later
    than a clinician expects, so it is an alarm, not a fault (recording goes on)."""

    active: bool


@dataclass(frozen=True)
class DeliveryDisabled:
    """The config cannot deliver (no endpoint, no ids: `active`). Recording is still allowed:
    the audio waits, encrypted, in the spool until the config is fixed, while refusing would
    lose the visit. So it is an alarm (LED error pattern, status, MQTT), not a fault."""

    active: bool


@dataclass(frozen=True)
class SpoolFull:
    """`hard=False`: above the high-water mark (no new encounters); `hard=True`: no room left
    to write, so capture has to stop."""

    hard: bool = False


@dataclass(frozen=True)
class SpoolOk:
    pass


@dataclass(frozen=True)
class StorageFault:
    """The spool cannot be written (its directory vanished, EIO, a read-only remount): not
    a full spool and not a missing mic. Capture stops until the storage works again."""

    reason: str = ""


@dataclass(frozen=True)
class StorageOk:
    """The spool's directory is there and syncs again."""


@dataclass(frozen=True)
class ServiceRefused:
    """The service rejects this device (401/403, unknown customer): audio would pile up."""

    reason: str = ""


@dataclass(frozen=True)
class ServiceOk:
    pass


@dataclass(frozen=True)
class Closed:
    """The I/O layer finished closing the encounter: its last recording is sealed in the spool.
    Delivery carries on in the background; the device is free for the next encounter."""


@dataclass(frozen=True)
class Uplink:
    """Delivery progress: online or not, and how many recordings wait in the spool.
    `backlog == 0` is the "delivery finished" signal."""

    online: bool
    backlog: int


@dataclass(frozen=True)
class ServiceLimits:
    """Duration limits from RetrieveConfiguration (they replace the config fallback)."""

    max_duration_s: float
    warn_before_s: float


Event = (
    RecordPressed
    | RecordHeld
    | PrivacyPressed
    | Start
    | Stop
    | Pause
    | Resume
    | Identify
    | Shutdown
    | Tick
    | SpeechDetected
    | MicLost
    | MicBack
    | DigitalSilence
    | LiveSilent
    | DeliveryDisabled
    | SpoolFull
    | SpoolOk
    | StorageFault
    | StorageOk
    | ServiceRefused
    | ServiceOk
    | Closed
    | Uplink
    | ServiceLimits
)
BUTTON_EVENTS = (RecordPressed, RecordHeld, PrivacyPressed)


# --- effects: what the I/O layer must do, in order ------------------------------------------


@dataclass(frozen=True)
class BeginEncounter:
    correlation_id: str
    context: StartContext | None = field(default=None, repr=False)


@dataclass(frozen=True)
class OpenRecording:
    """Start capturing into a new recording (1-based `seq`, fresh `guid`)."""

    correlation_id: str
    seq: int
    guid: str


@dataclass(frozen=True)
class CloseRecording:
    correlation_id: str
    seq: int
    guid: str
    reason: CloseReason


@dataclass(frozen=True)
class EndEncounter:
    """No more recordings will come; answer with `Closed` once the spool has sealed it."""

    correlation_id: str
    recordings: int
    reason: CloseReason


@dataclass(frozen=True)
class Warn:
    kind: WarningKind
    remaining_s: float


@dataclass(frozen=True)
class WarnCleared:
    kind: WarningKind


@dataclass(frozen=True)
class Alarm:
    """Set or clear a named alarm (`no_mic`, `mic_silent`, `spool_full`, `service_refusing`,
    `live_silent`, `delivery_disabled`, `storage_error`)."""

    name: str
    active: bool


@dataclass(frozen=True)
class Indicator:
    """Show this pattern on the LEDs (see panel.patterns.PATTERNS)."""

    pattern: IndicatorName


@dataclass(frozen=True)
class Sound:
    """Play this buzzer cue once (see panel.patterns.SOUNDS)."""

    cue: SoundName


Effect = (
    BeginEncounter
    | OpenRecording
    | CloseRecording
    | EndEncounter
    | Warn
    | WarnCleared
    | Alarm
    | Indicator
    | Sound
)


# --- settings and results -----------------------------------------------------------------


@dataclass(frozen=True)
class Limits:
    """Timers of an encounter; 0 switches a warning or the auto-stop off."""

    max_duration_s: float = 5400.0
    warn_before_s: float = 300.0
    auto_stop_after_s: float = 600.0
    auto_stop_warning_s: float = 60.0
    identify_s: float = 10.0

    @classmethod
    def from_config(cls, config: Config) -> Limits:
        """The offline fallback; `ServiceLimits` replaces the first two once the service says."""
        return cls(
            max_duration_s=config.aas.max_duration_s,
            warn_before_s=config.aas.warn_before_s,
            auto_stop_after_s=config.vad.auto_stop_after_s,
            auto_stop_warning_s=config.vad.auto_stop_warning_s,
        )


@dataclass(frozen=True)
class Outcome:
    """What one event did: accepted or refused (with why), the state after, effects in order."""

    ok: bool
    state: EncounterState
    effects: tuple[Effect, ...] = ()
    error: str | None = None
    code: str | None = None
    correlation_id: str | None = None
    recording_seq: int | None = None
    encounter_ref: str | None = None  # the controller's keyed ref of correlation_id

    def to_result(self, *, local: bool = True) -> CommandResult:
        """The reply to a command. `local=False` (MQTT) replaces the correlation id, which may
        be an EHR identifier, with the opaque `encounter_ref`."""
        data: dict[str, Any] = {}
        if self.correlation_id is not None:
            if local:
                data["correlation_id"] = self.correlation_id
            else:
                data["encounter_ref"] = self.encounter_ref
            data["recording_seq"] = self.recording_seq
        return CommandResult(
            ok=self.ok, error=self.error, code=self.code, state=self.state, data=data
        )
