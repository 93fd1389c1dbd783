"""What the device reports about itself, and the commands it accepts from anywhere.

One status model feeds `ctl status`, the MQTT status topic and systemd's STATUS= line, so the
three never disagree. One command interface serves the buttons' neighbours: the control socket
and MQTT both turn their input into a `CommandRequest` and hand it to a `CommandHandler`.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from datetime import datetime
from typing import Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field

EncounterState = Literal["idle", "recording", "paused", "stopping", "error"]
CommandName = Literal[
    "status", "start", "stop", "pause", "resume", "identify", "reload", "ping", "spool_retry"
]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ArrayMicLeftOut(_Model):
    """One mic of the array the beam left out (audio/array/mic_balance.py): its number,
    1-based as on the board's silkscreen order of channels, and why."""

    mic: int = Field(ge=1, le=32)
    reason: Literal["silent", "weak", "loud"]


class MicStatus(_Model):
    present: bool = False
    device: str = ""
    level_dbfs: float | None = None
    peak_dbfs: float | None = None
    clipped_samples: int = 0
    xruns: int = 0
    digital_silence: bool = False
    last_error: str | None = None
    # the newest recording's verdict (empty: every mic in the beam, or no beam)
    array_left_out: list[ArrayMicLeftOut] = Field(default_factory=list)


class BacklogStatus(_Model):
    recordings: int = 0
    bytes: int = 0
    oldest_age_s: float | None = None
    quarantined: int = 0


class ErrorInfo(_Model):
    code: str
    message: str
    at: datetime


class FleetCounters(_Model):
    """Fleet reporting's own health since the daemon started (the MQTT status carries the
    same numbers under `mqtt`): what it could not send or would not run."""

    connected: bool = False
    events_dropped: int = 0  # oldest events dropped while the broker was away
    commands_rejected: int = 0  # answered with an error
    commands_limited: int = 0  # refused by the command rate limit
    commands_ignored: int = 0  # retained commands: never run, never answered
    replies_dropped: int = 0  # answers that could not be sent (refusal budget, full queue)


class DeviceStatus(_Model):
    """A snapshot of the device; patient context never appears here."""

    state: EncounterState = "idle"
    error_reason: str | None = None
    correlation_id: str | None = None  # local only (ctl); never published to MQTT
    encounter_ref: str | None = None  # opaque, safe to publish
    recording_seq: int | None = None
    encounter_elapsed_s: float | None = None
    alarms: list[str] = Field(default_factory=list)
    warnings: list[str] = Field(default_factory=list)  # e.g. "max_duration", "auto_stop"
    online: bool = False
    service: str = "aas"  # uplink.service: where the audio goes
    # The service's ids for what processing produced (transcript, document): local only (ctl),
    # never published; opaque ids, never generated text.
    processing_refs: dict[str, str] = Field(default_factory=dict)
    last_delivery_at: datetime | None = None
    backlog: BacklogStatus = Field(default_factory=BacklogStatus)
    mic: MicStatus = Field(default_factory=MicStatus)
    # `error`: delivery's problem now (None once it works again: what an alert follows);
    # `last_error`: the last problem seen, kept with its time after recovery (history).
    error: ErrorInfo | None = None
    last_error: ErrorInfo | None = None
    mqtt: FleetCounters | None = None  # None: MQTT is off

    def one_line(self) -> str:
        """The human line for systemd's STATUS= and the demo timeline."""
        parts: list[str] = [self.state]
        if self.recording_seq is not None:
            parts.append(f"recording #{self.recording_seq}")
        parts.append(f"backlog {self.backlog.recordings} rec / {self.backlog.bytes} B")
        parts.append("online" if self.online else "offline")
        if self.alarms:
            parts.append("alarms: " + ",".join(self.alarms))
        return "; ".join(parts)


REF_HEX = 12  # 48 bits: unique enough to tell a device's encounters apart on a dashboard
EncounterRef = Callable[[str], str]  # correlation id -> its encounter_ref, keyed per device


def encounter_ref(correlation_id: str, key: bytes) -> str:
    """An opaque reference to an encounter for fleet dashboards and the spool's ledger:
    HMAC-SHA256 of the id under a per-device secret (the spool derives it from its key,
    `Spool.encounter_ref`), cut to 12 hex characters.

    Keyed because a correlation id may be a guessable EHR identifier (an MRN and a visit
    number): an unkeyed hash of it is reversed by trying the candidates. The same id gives
    the same ref on one device for as long as its spool key lives; another device (another
    key) gives another ref, so refs cannot be joined across devices without the keys.
    """
    return hmac.new(key, correlation_id.encode(), hashlib.sha256).hexdigest()[:REF_HEX]


class StartContext(_Model):
    """EHR context that may come with a start command. Never logged, never published."""

    correlation_id: str | None = Field(None, pattern=r"^[A-Za-z0-9_|-]{1,128}$")
    external_user_id: str | None = Field(None, max_length=256)
    ehr_instance_id: str | None = Field(None, max_length=256)
    data: dict[str, Any] | None = None  # passed through to the service as session data


class CommandRequest(_Model):
    name: CommandName
    context: StartContext | None = None  # only for "start"


class CommandResult(_Model):
    ok: bool
    error: str | None = None
    code: str | None = None  # machine-readable refusal reason, e.g. "no_encounter"
    state: EncounterState | None = None
    data: dict[str, Any] = Field(default_factory=dict)


class CommandHandler(Protocol):
    """Whatever executes commands (the daemon); control socket and MQTT call it."""

    async def execute(self, request: CommandRequest) -> CommandResult: ...

    def status(self) -> DeviceStatus: ...
