"""The effect interpreter: runs controller events and carries out the effects they return.

`EncounterController` decides, this class does: LEDs and buzzer (`panel.apply`), capture
(`AudioWorker` open/close), sealing an encounter in the spool (then `Closed` back to the
controller), waking the delivery engine, fleet events, and the STATUS= line. It is also the
`CommandHandler` of the control socket (and, wrapped by `MqttHandler`, of MQTT), so every
input — button, ctl, MQTT, the pipeline's own signals — goes through one `dispatch` on the
loop thread, in order.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, Protocol

from edge_recorder.audio.array.stage import (
    CALIBRATION_WARNING,
    MIC_FAULT_WARNING,
    last_calibration_note,
    last_mic_faults,
    last_mic_note,
)
from edge_recorder.capture.worker import AudioWorker
from edge_recorder.delivery.engine import DeliverySnapshot
from edge_recorder.encounter import events as ev
from edge_recorder.encounter.controller import EncounterController, Outcome
from edge_recorder.fleet.payloads import EventType
from edge_recorder.panel.gpio import PanelOutput
from edge_recorder.spool import Spool, SpoolError, SpoolRefused
from edge_recorder.status import (
    ArrayMicLeftOut,
    CommandRequest,
    CommandResult,
    DeviceStatus,
    FleetCounters,
    StartContext,
)
from edge_recorder.support.logs import get_logger

log = get_logger(__name__)

CLOSE_TIMEOUT_S = 10.0  # the capture thread seals a recording in milliseconds; this is a bound
# Indicator patterns kept for the panel simulator's `led_history` (mock pins only). A device
# changes pattern a few times per encounter; a bound keeps months of uptime from growing it.
INDICATOR_HISTORY = 256


class Delivery(Protocol):
    """What the recorder needs from the delivery engine (edge_recorder.delivery.engine)."""

    def wake(self) -> None: ...

    def snapshot(self) -> DeliverySnapshot: ...


class Fleet(Protocol):
    """What the recorder needs from the fleet reporter (edge_recorder.fleet.reporter)."""

    def status_changed(self) -> None: ...

    def counters(self) -> FleetCounters: ...

    def event(
        self, event: EventType, *, encounter_ref: str | None = None, **details: Any
    ) -> None: ...


class Recorder:
    """Dispatch events on the loop thread; `execute`/`status` make it a CommandHandler."""

    def __init__(
        self,
        controller: EncounterController,
        panel: PanelOutput,
        worker: AudioWorker,
        spool: Spool,
        delivery: Delivery,
        *,
        on_change: Callable[[DeviceStatus], None],
        fleet: Fleet | None = None,
    ) -> None:
        self.controller = controller
        self.panel = panel
        self.worker = worker
        self.spool = spool
        self.delivery = delivery
        self.fleet = fleet
        self._on_change = on_change
        self._loop = asyncio.get_running_loop()
        self._closing: set[asyncio.Task[None]] = set()
        # (monotonic time, pattern) shown, newest last; only the simulator reads it
        self.indicators: deque[tuple[float, str]] = deque(maxlen=INDICATOR_HISTORY)
        # reload, ping, spool_retry: not encounter commands; the daemon fills these in
        self.extra_commands: dict[str, Callable[[], CommandResult]] = {}

    # --- inputs -------------------------------------------------------------------------------

    def now(self) -> float:
        return self._loop.time()

    def dispatch(self, event: ev.Event) -> Outcome:
        outcome = self.controller.handle(event, self.now())
        if not outcome.ok and not isinstance(event, ev.Uplink | ev.Tick):
            log.info("event refused", event=type(event).__name__, code=outcome.code)
        return self.carry_out(outcome)

    def post(self, event: ev.Event) -> None:
        """From any thread (capture, GPIO): run `dispatch(event)` on the loop soon."""
        try:
            self._loop.call_soon_threadsafe(self._dispatch_later, event)
        except RuntimeError:  # the loop has closed: shutting down
            log.debug("event dropped after shutdown", event=type(event).__name__)

    def on_button(self, event: ev.Event) -> None:
        """The panel's callback (already on the loop thread)."""
        self._dispatch_later(event)

    def _dispatch_later(self, event: ev.Event) -> None:
        if isinstance(event, ev.RecordPressed | ev.Start):
            self.check_spool_before_start()
        self.dispatch(event)

    async def execute(self, request: CommandRequest) -> CommandResult:
        """CommandHandler for the control socket (local: the correlation id is shown)."""
        special = self.extra_commands.get(request.name)
        if special is not None:
            return special()
        return self.run_command(request, "ctl").to_result()

    def run_command(self, request: CommandRequest, source: ev.Source) -> Outcome:
        if request.name == "start":
            self.check_spool_before_start()
        return self.carry_out(self.controller.command(request, self.now(), source))

    def status(self) -> DeviceStatus:
        try:
            snap = self.delivery.snapshot()
        except Exception:  # status must always answer (ctl, STATUS=, MQTT)
            log.exception("delivery snapshot failed")
            snap = DeliverySnapshot.unknown()
        base = DeviceStatus(
            online=snap.online,
            service=snap.service,
            processing_refs=dict(snap.processing_refs),
            last_delivery_at=snap.last_delivery_at,
            error=snap.error,
            last_error=snap.last_error,
            backlog=self.spool.backlog(),
            mic=self.worker.mic,
            mqtt=self.fleet.counters() if self.fleet is not None else None,
        )
        status = self.controller.device_status(self.now(), base)
        if last_calibration_note() is not None:  # the reason: the log and `check`
            status.warnings = [*status.warnings, CALIBRATION_WARNING]
        if last_mic_note() is not None:  # the log and `record` say it in words
            status.warnings = [*status.warnings, MIC_FAULT_WARNING]
            left_out = [
                ArrayMicLeftOut(mic=f.index + 1, reason=f.reason) for f in last_mic_faults()
            ]
            status.mic = status.mic.model_copy(update={"array_left_out": left_out})
        return status

    def check_spool_before_start(self) -> None:
        """Tell the controller about a full spool before it admits a new encounter."""
        alarm = self.spool.space().alarm
        if alarm is not None and self.controller.phase == "idle":
            self.dispatch(ev.SpoolFull(hard=alarm != "spool-high-water"))

    # --- effects ------------------------------------------------------------------------------

    def show_current(self) -> None:
        """Light the panel for the current state (at start-up: nothing was shown yet)."""
        self._apply(ev.Indicator(self.controller.indicator))

    def carry_out(self, outcome: Outcome) -> Outcome:
        for effect in outcome.effects:
            try:
                self._apply(effect)
            except Exception:  # one failing effect must not skip the ones after it
                log.exception("effect failed", effect=type(effect).__name__)
        self._on_change(self.status())
        return outcome

    def _keep_context(self, cid: str, context: StartContext | None) -> None:
        """Seal the EHR context in the spool (delivery may be hours later, after a restart).
        A failure is logged without content: the audio is still recorded and delivered, under
        the configured identity."""
        if context is None:
            return
        values = {
            k: v
            for k, v in (
                ("external_user_id", context.external_user_id),
                ("ehr_instance_id", context.ehr_instance_id),
            )
            if v
        }
        if not values:
            return
        try:
            self.spool.save_context(cid, values)
        except (OSError, SpoolError) as exc:
            log.error("could not keep the encounter's EHR context", error=type(exc).__name__)

    def _apply(self, effect: ev.Effect) -> None:
        if isinstance(effect, ev.Indicator):  # noted before the pins change (sim history)
            self.indicators.append((time.monotonic(), effect.pattern))
        self.panel.apply(effect)
        match effect:
            case ev.BeginEncounter(correlation_id=cid, context=context):
                self._keep_context(cid, context)
                log.info("encounter started", encounter_ref=self.controller.ref(cid))
                self._event("encounter_started", encounter_ref=self.controller.ref(cid))
            case ev.OpenRecording(correlation_id=cid, seq=seq, guid=guid):
                log.info("recording opened", encounter_ref=self.controller.ref(cid), seq=seq)
                self._track(self.worker.open_recording(cid, seq, guid), "open", cid)
                if seq > 1:
                    self._event("encounter_resumed", encounter_ref=self.controller.ref(cid))
            case ev.CloseRecording(correlation_id=cid, seq=seq, reason=reason):
                log.info("recording closing", encounter_ref=self.controller.ref(cid), reason=reason)
                self._track(self.worker.close_recording(reason), "close", cid)
                if reason == "pause":
                    self._event("encounter_paused", encounter_ref=self.controller.ref(cid))
            case ev.EndEncounter(correlation_id=cid, recordings=count, reason=reason):
                task = self._loop.create_task(self._end_encounter(cid, count, reason))
                self._closing.add(task)
                task.add_done_callback(self._closing.discard)
            case ev.Warn(kind=kind, remaining_s=remaining):
                log.warning("encounter warning", kind=kind, remaining_s=remaining)
                self._event("alarm", severity="warning", code=kind, remaining_s=remaining)
            case ev.WarnCleared(kind=kind):
                log.info("encounter warning cleared", kind=kind)
                self._event("alarm_cleared", code=kind)
            case ev.Alarm(name=name, active=active):
                (log.warning if active else log.info)("alarm", alarm=name, active=active)
                severity = "warning" if active else "info"
                self._event("alarm" if active else "alarm_cleared", severity=severity, code=name)
            case _:
                pass

    def _track(self, future: Future[Any], what: str, cid: str) -> None:
        """Log a failed open/close and, once done, wake delivery (from the loop thread)."""

        def done(fut: Future[Any]) -> None:
            exc = fut.exception()
            if exc is not None:
                log.error(f"recording {what} failed", error=str(exc), kind=type(exc).__name__)
                if isinstance(exc, SpoolRefused) and what == "open":
                    # a new encounter the spool will not admit: end it (no audio was taken)
                    self.dispatch(ev.SpoolFull(hard=False))
                    self.dispatch(ev.Stop("daemon"))
            self.delivery.wake()

        future.add_done_callback(lambda fut: self._loop.call_soon_threadsafe(done, fut))

    async def _end_encounter(self, cid: str, count: int, reason: str) -> None:
        ref = self.controller.ref(cid)
        try:
            await asyncio.wait_for(asyncio.wrap_future(self.worker.barrier()), CLOSE_TIMEOUT_S)
        except Exception as exc:  # a stuck capture thread: the watchdog will say so
            log.error("capture did not confirm the close", error=str(exc), encounter_ref=ref)
        try:
            await asyncio.to_thread(self.spool.end_encounter, cid)
        except SpoolError as exc:  # e.g. never admitted (refused at the first recording)
            log.warning("encounter not sealed in the spool", error=str(exc), encounter_ref=ref)
        log.info("encounter closed", encounter_ref=ref, recordings=count, reason=reason)
        self._event("encounter_stopped", encounter_ref=ref, reason=reason, recordings=count)
        self.dispatch(ev.Closed())
        self.delivery.wake()

    async def wait_closed(self, timeout_s: float) -> None:
        """Wait for encounters being sealed (shutdown)."""
        if self._closing:
            await asyncio.wait(set(self._closing), timeout=timeout_s)

    def _event(self, name: EventType, *, encounter_ref: str | None = None, **details: Any) -> None:
        if self.fleet is None:
            return
        severity = details.pop("severity", "info")
        code = details.pop("code", None)
        try:
            self.fleet.event(
                name, severity=severity, encounter_ref=encounter_ref, code=code, **details
            )
        except Exception as exc:  # MQTT must never break recording
            log.warning("fleet event failed", error=str(exc))


class MqttHandler:
    """The recorder as MQTT sees it: replies carry the opaque encounter_ref, not the id."""

    def __init__(self, recorder: Recorder) -> None:
        self._recorder = recorder

    async def execute(self, request: CommandRequest) -> CommandResult:
        special = self._recorder.extra_commands.get(request.name)
        if special is not None:
            return special()
        return self._recorder.run_command(request, "mqtt").to_result(local=False)

    def status(self) -> DeviceStatus:
        return self._recorder.status()
