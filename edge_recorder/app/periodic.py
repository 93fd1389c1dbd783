"""The daemon's timed work: controller timers, and one health pass a second.

Why one pass: on an idle device every wake-up of the event loop costs more than the work it
does (~0.1 ms of CPU on cold caches, issue #24). The spool sync, the health check (delivery
and spool state turned into controller events), STATUS= and the fleet status check used to
wake the loop each on their own 1 s timer, with the sync on a worker thread even when it had
nothing to do; now they share one wake-up, the sync runs inline when there is nothing to
fsync, and the controller's timers wake the loop only when one is set.
"""

from __future__ import annotations

import asyncio
from typing import Protocol

from edge_recorder.app.recorder import Recorder
from edge_recorder.app.service import ServiceNotifier
from edge_recorder.capture.recording import storage_reason
from edge_recorder.config.model import Config
from edge_recorder.delivery.engine import DeliveryEngine
from edge_recorder.encounter import events as ev
from edge_recorder.spool import Spool, SpoolError
from edge_recorder.status import DeviceStatus
from edge_recorder.support.logs import get_logger

log = get_logger(__name__)

TICK_MAX_S = 1.0  # while a timer is set, it is looked at at least this often
HEALTH_EVERY_S = 1.0  # delivery/spool state is polled this often (and spool.sync)


class StatusSink(Protocol):
    """What the health pass tells the fleet reporter (edge_recorder.fleet.reporter)."""

    def status_changed(self) -> None: ...

    def offer_status(self, status: DeviceStatus) -> None: ...


def status_line(status: DeviceStatus) -> str:
    """systemd's STATUS=: the shared one-liner, plus the mic when it is missing."""
    line = status.one_line()
    if not status.mic.present:
        line += "; no mic" + (f" ({status.mic.last_error})" if status.mic.last_error else "")
    return line


class PeriodicWork:
    """The Daemon's timer, health and status methods (a mixin: the Daemon sets these)."""

    config: Config
    spool: Spool
    delivery: DeliveryEngine
    recorder: Recorder
    notifier: ServiceNotifier
    _fleet: StatusSink | None
    _last_line: str
    _service: dict[str, ev.Event]
    _storage_problem: str | None
    _health_error: str | None
    _timers_changed: asyncio.Event | None

    async def _ticker(self) -> None:
        """Send `Tick` when the controller's next timer falls due (looking at least every
        `TICK_MAX_S` while one is set). With no timer (idle: no encounter, no identify) it
        sleeps until a dispatch may have set one: no wake-up a second for nothing."""
        loop = asyncio.get_running_loop()
        changed = self._timers_changed = self._timers_changed or asyncio.Event()
        while True:
            changed.clear()
            deadline = self.recorder.controller.next_deadline()
            if deadline is None:
                await changed.wait()
                continue
            delay = min(max(deadline - loop.time(), 0.0), TICK_MAX_S)
            try:
                async with asyncio.timeout(delay):
                    await changed.wait()
                continue  # a dispatch: the deadline may have moved
            except TimeoutError:
                pass
            if self.recorder.controller.next_deadline() is not None:
                self.recorder.dispatch(ev.Tick())

    def _dispatched(self, status: DeviceStatus) -> None:
        """The recorder's `on_change`: after every event or command carried out."""
        if self._timers_changed is not None:
            self._timers_changed.set()
        self._status_changed(status)

    async def _health(self) -> None:
        """The periodic pass: spool.sync, the health events, STATUS= and the fleet status.

        A spool that cannot be synced or measured (its directory removed, EIO, a read-only
        remount) is a storage fault: named as such in status and logged once when it starts
        and once when it ends, not a traceback a second."""
        while True:
            problem: str | None = None
            try:
                await self._sync_spool()
            except (SpoolError, OSError) as exc:
                problem = storage_reason(exc)
            status: DeviceStatus | None = None
            try:
                status = self._check_health()
                self._health_error = None
            except (SpoolError, OSError) as exc:
                problem = problem or storage_reason(exc)
            except Exception as exc:  # a bug: its traceback once, not once a second
                if repr(exc) != self._health_error:
                    self._health_error = repr(exc)
                    log.exception("health check failed")
            self._storage_state(problem)
            if status is not None and self._fleet is not None:
                self._fleet.offer_status(status)  # its news check, on this same wake-up
            await asyncio.sleep(min(HEALTH_EVERY_S, self.config.spool.fsync_interval_s))

    async def _sync_spool(self) -> None:
        """`spool.sync` on a worker thread when it has something to fsync or a `spool retry`
        request to apply; otherwise nothing to do, and no thread hand-off (two wake-ups)."""
        requests = self.spool.requests_waiting()
        if requests or self.spool.sync_due():
            await asyncio.to_thread(self.spool.sync)
        if requests:
            self.delivery.wake()  # a retried recording is due now, not at the next poll

    def _storage_state(self, problem: str | None) -> None:
        """Tell the controller (and the log, once) when the spool's storage fails or recovers."""
        if problem == self._storage_problem:
            return
        if problem is not None:
            log.error("spool storage fault; capture stops until it works again", error=problem)
            self.recorder.dispatch(ev.StorageFault(problem))
        else:
            log.warning("spool storage works again")
            self.recorder.dispatch(ev.StorageOk())
        self._storage_problem = problem

    def _check_health(self) -> DeviceStatus:
        """One status build per pass (it walks the spool's backlog): the events it sends
        report their own status change; with none, this pass's status is the news. Returns
        the status as it is after the pass."""
        status = self.recorder.status()
        snap = self.delivery.snapshot()
        backlog = status.backlog.recordings
        alarm = self.spool.space().alarm
        spool_event: ev.Event = ev.SpoolOk() if alarm is None else ev.SpoolFull(hard=False)
        if alarm in ("spool-full", "disk-reserve", "disk-full"):
            spool_event = ev.SpoolFull(hard=True)
        if (alarm is None) == ("spool_full" in status.alarms):
            # The capture thread raised it (a write refused) or something else cleared it:
            # send the space check's verdict even if it did not change, so the alarm
            # follows the space really free, both ways.
            self._service.pop("spool", None)
        refusing = snap.refusing
        reason = snap.last_error.message if snap.last_error is not None else ""
        service_event: ev.Event = ev.ServiceRefused(reason) if refusing else ev.ServiceOk()
        limits = snap.service_limits
        wanted: dict[str, ev.Event] = {
            "uplink": ev.Uplink(snap.online, backlog),
            "spool": spool_event,
            "service": service_event,
            "live": ev.LiveSilent(snap.live_silent),
            "delivery": ev.DeliveryDisabled(snap.disabled),
        }
        if limits is not None:
            wanted["limits"] = ev.ServiceLimits(float(limits[0]), float(limits[1]))
        dispatched = False
        for key, event in wanted.items():
            if self._service.get(key) != event:
                self._service[key] = event
                self.recorder.dispatch(event)  # carries out, then reports the new status
                dispatched = True
        if not dispatched:
            self._status_changed(status)
            return status
        return self.recorder.status()

    def _status_changed(self, status: DeviceStatus) -> None:
        line = status_line(status)
        if line != self._last_line:
            self._last_line = line
            self.notifier.status(line)
            if self._fleet is not None:
                self._fleet.status_changed()
