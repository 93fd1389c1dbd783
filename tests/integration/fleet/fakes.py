"""A stand-in for the daemon (status provider + CommandHandler) and a fixed machine.

The daemon is written later; these fakes behave the way its contract says: commands change
the state, results may carry a correlation_id (which the reporter must never publish).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from edge_recorder.fleet.sysinfo import SystemInfo, Throttling, parse_throttled
from edge_recorder.status import (
    CommandRequest,
    CommandResult,
    DeviceStatus,
    ErrorInfo,
    MicStatus,
    encounter_ref,
)

PATIENT_CORRELATION_ID = "enc-PATIENT-4711-secret"
DEVICE_REF_KEY = b"fake device ref key, as the spool derives one"


class FakeDaemon:
    """State machine just rich enough for every command to answer something real."""

    def __init__(self) -> None:
        self.requests: list[CommandRequest] = []
        self.current = DeviceStatus(
            state="idle",
            mic=MicStatus(present=True, device="plughw:CARD=Fake", level_dbfs=-42.0),
        )
        self.raise_on: set[str] = set()

    def status(self) -> DeviceStatus:
        return self.current

    async def execute(self, request: CommandRequest) -> CommandResult:
        self.requests.append(request)
        if request.name in self.raise_on:
            raise RuntimeError(f"boom for {PATIENT_CORRELATION_ID}")
        state = self.current.state
        if request.name == "start":
            if state != "idle":
                return CommandResult(ok=False, error=f"already {state}", state=state)
            ctx = request.context
            cid = (ctx.correlation_id if ctx else None) or str(uuid.uuid4())
            self.current = self.current.model_copy(
                update={
                    "state": "recording",
                    "correlation_id": cid,
                    "encounter_ref": encounter_ref(cid, DEVICE_REF_KEY),
                    "recording_seq": 1,
                }
            )
            ref = encounter_ref(cid, DEVICE_REF_KEY)  # MqttHandler's answer, plus the id
            data = {"correlation_id": cid, "encounter_ref": ref, "recording_seq": 1}
            return CommandResult(ok=True, state="recording", data=data)
        if request.name == "pause":
            if state != "recording":
                msg = f"cannot pause while {state} (encounter {self.current.correlation_id})"
                return CommandResult(ok=False, error=msg, code="not_recording", state=state)
            self.current = self.current.model_copy(update={"state": "paused"})
        elif request.name == "resume":
            self.current = self.current.model_copy(update={"state": "recording"})
        elif request.name == "stop":
            self.current = self.current.model_copy(
                update={"state": "idle", "correlation_id": None, "encounter_ref": None}
            )
        data: dict[str, object] = {
            "ping": {"pong": True},
            "identify": {"seconds": 10},
            "spool_retry": {"retried": 2},
            "reload": {"changed": False},
        }.get(request.name, {})
        return CommandResult(ok=True, state=self.current.state, data=dict(data))

    def fail_mic(self) -> None:
        self.current = self.current.model_copy(
            update={
                "alarms": ["mic_missing"],
                "mic": MicStatus(present=False, last_error="No such device [hw:2]"),
                "last_error": ErrorInfo(
                    code="mic_missing", message="capture device gone", at=datetime.now(UTC)
                ),
            }
        )


class FakeSystem:
    def __init__(self, throttled: Throttling | None = None) -> None:
        self.throttled = throttled or parse_throttled("throttled=0x50000")

    def collect(self) -> SystemInfo:
        return SystemInfo(
            disk_free_bytes=20_000_000_000,
            disk_total_bytes=30_000_000_000,
            cpu_temp_c=48.3,
            throttling=self.throttled,
            uptime_s=1234.0,
            process_uptime_s=12.0,
            os="Debian GNU/Linux 12 (bookworm)",
            kernel="6.6.0",
            model="Raspberry Pi 4 Model B Rev 1.5",
            ip="10.0.0.12",
            hostname="exam-host",
        )
