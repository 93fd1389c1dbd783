"""systemd supervision: sd_notify messages, a progress-checked watchdog, and signal wiring.

The daemon talks to systemd through one small `NotifySender` protocol, so tests can bind their own
NOTIFY_SOCKET (the real notifier) or record messages (the fake). The watchdog is the part that
matters: systemd restarts the service when `WATCHDOG=1` stops, so the ping is sent only when
the event loop is alive (the ping is sent *from* the loop) and every registered critical thread
(the capture thread first of all) has beaten its `Heartbeat` recently. A capture thread stuck
in a driver call therefore leads to a restart instead of a device that looks fine but records
nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import threading
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field

from edge_recorder.status import DeviceStatus
from edge_recorder.support.heartbeat import Clock, Heartbeat
from edge_recorder.support.logs import get_logger

# Re-exported: the daemon's callers and tests import these from here.
from edge_recorder.support.sdnotify import NotifySender as NotifySender
from edge_recorder.support.sdnotify import SystemdNotifier as SystemdNotifier
from edge_recorder.support.sdnotify import watchdog_interval as watchdog_interval

log = get_logger(__name__)

Callback = Callable[[], Awaitable[object] | object]


@dataclass
class RecordingNotifier:
    """A fake for unit tests of the code that notifies: keeps every message in order."""

    messages: list[str] = field(default_factory=list)

    def notify(self, message: str) -> bool:
        self.messages.append(message)
        return True


def _one_line(text: str) -> str:
    """STATUS= must be one line; newlines would start new (bogus) assignments."""
    return " ".join(text.split())


class ServiceNotifier:
    """The messages the daemon sends, named for when it sends them."""

    def __init__(self, notifier: NotifySender | None = None, clock: Clock = time.monotonic) -> None:
        self._notifier: NotifySender = notifier if notifier is not None else SystemdNotifier()
        self._clock = clock

    def _send(self, *assignments: str) -> bool:
        return self._notifier.notify("\n".join(assignments))

    def ready(self, status: DeviceStatus | str | None = None) -> bool:
        """Mic and spool are ready: systemd considers the start complete."""
        extra = () if status is None else (self._status_assignment(status),)
        return self._send("READY=1", *extra)

    def status(self, status: DeviceStatus | str) -> bool:
        """The line `systemctl status` shows (state and backlog, never patient data)."""
        return self._send(self._status_assignment(status))

    def stopping(self, status: str = "stopping") -> bool:
        return self._send("STOPPING=1", f"STATUS={_one_line(status)}")

    def reloading(self) -> bool:
        # MONOTONIC_USEC lets systemd >= 253 order the reload against the READY=1 that ends it.
        usec = int(self._clock() * 1_000_000)
        return self._send("RELOADING=1", f"MONOTONIC_USEC={usec}", "STATUS=reloading config")

    def watchdog(self) -> bool:
        return self._send("WATCHDOG=1")

    def flush(self, timeout_s: float = 1.0) -> bool:
        """Let queued messages (STOPPING=1 above all) reach systemd before the process exits."""
        flush = getattr(self._notifier, "flush", None)
        return bool(flush(timeout_s)) if flush is not None else True

    @staticmethod
    def _status_assignment(status: DeviceStatus | str) -> str:
        text = status.one_line() if isinstance(status, DeviceStatus) else status
        return f"STATUS={_one_line(text)}"


class WatchdogSupervisor:
    """Pings systemd's watchdog only while every registered heartbeat is fresh.

    Run `run()` as a task on the daemon's event loop: a blocked loop sends no ping at all, and
    a stale thread heartbeat makes the supervisor withhold the ping. Either way systemd sees
    silence for WatchdogSec and restarts the service (Restart=on-failure).
    """

    def __init__(
        self,
        notifier: ServiceNotifier,
        timeout_s: float | None,
        clock: Clock = time.monotonic,
    ) -> None:
        self._notifier = notifier
        self.timeout_s = timeout_s
        self._clock = clock
        self._beats: dict[str, Heartbeat] = {}
        self._lock = threading.Lock()
        self._withholding: tuple[str, ...] = ()
        self.pings = 0
        self.withheld = 0

    @classmethod
    def from_environment(
        cls, notifier: ServiceNotifier, environ: Mapping[str, str] | None = None
    ) -> WatchdogSupervisor:
        return cls(notifier, watchdog_interval(environ))

    @property
    def enabled(self) -> bool:
        return self.timeout_s is not None

    @property
    def ping_interval_s(self) -> float | None:
        """Half the timeout, as sd_watchdog_enabled(3) recommends."""
        return None if self.timeout_s is None else self.timeout_s / 2

    def register(self, name: str, max_age_s: float) -> Heartbeat:
        """Watch a critical component; its thread calls `beat()` at least every max_age_s."""
        heartbeat = Heartbeat(name, max_age_s, self._clock, on_close=self._forget)
        with self._lock:
            if name in self._beats:
                raise ValueError(f"heartbeat {name!r} is already registered")
            self._beats[name] = heartbeat
        log.debug("watchdog heartbeat registered", heartbeat=name, max_age_s=max_age_s)
        return heartbeat

    def _forget(self, heartbeat: Heartbeat) -> None:
        with self._lock:
            if self._beats.get(heartbeat.name) is heartbeat:
                del self._beats[heartbeat.name]

    def stale_ages(self, now: float | None = None) -> dict[str, float]:
        """Age in seconds of each heartbeat older than it may be (empty when all is well)."""
        at = self._clock() if now is None else now
        with self._lock:
            beats = sorted(self._beats.values(), key=lambda b: b.name)
        return {b.name: b.age(at) for b in beats if not b.is_fresh(at)}

    def stale(self, now: float | None = None) -> tuple[str, ...]:
        """Names of heartbeats older than they may be (empty when all is well)."""
        return tuple(self.stale_ages(now))

    def tick(self) -> bool:
        """One decision: ping if every heartbeat is fresh; True when a ping was sent."""
        ages = self.stale_ages()
        stale = tuple(ages)
        healthy = not stale
        if healthy:
            self._notifier.watchdog()
            self.pings += 1
            if self._withholding:
                log.info("watchdog pings resumed", recovered=",".join(self._withholding))
        else:
            self.withheld += 1
            if stale != self._withholding:
                log.error(
                    "watchdog ping withheld: component not making progress",
                    stale=",".join(stale),
                    ages_s=",".join(f"{name}={age:.1f}" for name, age in ages.items()),
                )
                # Shown by `systemctl status` until systemd's restart: says why it happened.
                self._notifier.status(f"watchdog withheld: {', '.join(stale)} not making progress")
        self._withholding = stale
        return healthy

    async def run(self) -> None:
        """Tick every half timeout until cancelled; returns at once when systemd set no watchdog."""
        interval = self.ping_interval_s
        if interval is None:
            return
        log.info("watchdog supervisor started", timeout_s=self.timeout_s, interval_s=interval)
        while True:
            self.tick()
            await asyncio.sleep(interval)


def install_signal_handlers(
    loop: asyncio.AbstractEventLoop,
    on_stop: Callback,
    on_reload: Callback | None = None,
    notifier: ServiceNotifier | None = None,
    ready: Callable[[], bool] = lambda: True,
) -> Callable[[], None]:
    """SIGTERM/SIGINT → `STOPPING=1` then `on_stop()`; SIGHUP → `RELOADING=1`, `on_reload()`,
    `READY=1`. Callbacks may be plain or async functions; they run on the loop, never inside
    the signal handler. A second SIGTERM while stopping is ignored (systemd escalates to
    SIGKILL after TimeoutStopSec anyway); SIGHUPs during a reload coalesce into one more
    reload. A SIGHUP before `ready()` is ignored: its READY=1 would tell systemd the start
    finished while it has not. Returns a function that removes the handlers.
    """
    stopping = False
    tasks: set[asyncio.Task[None]] = set()

    def spawn(callback: Callback, done: Callable[[], object] | None = None) -> None:
        async def runner() -> None:
            try:
                result = callback()
                if asyncio.iscoroutine(result) or isinstance(result, asyncio.Future):
                    await result
            except Exception:
                log.exception("signal callback failed", callback=getattr(callback, "__name__", "?"))
            finally:
                if done is not None:
                    done()

        task = loop.create_task(runner())
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    def handle_stop(signum: int) -> None:
        nonlocal stopping
        if stopping:
            log.info("stop already in progress", signal=signal.Signals(signum).name)
            return
        stopping = True
        log.info("stopping on signal", signal=signal.Signals(signum).name)
        if notifier is not None:
            notifier.stopping()
        spawn(on_stop)

    reload_running = False
    reload_again = False

    def start_reload() -> None:
        nonlocal reload_running
        reload_running = True
        log.info("reloading on SIGHUP")
        if notifier is not None:
            notifier.reloading()
        if on_reload is not None:
            spawn(on_reload, done=finish_reload)

    def finish_reload() -> None:
        nonlocal reload_running, reload_again
        reload_running = False
        if stopping:
            return  # READY=1 after STOPPING=1 would tell systemd we are running again
        if notifier is not None:
            notifier.ready()
        if reload_again:  # a SIGHUP came during the reload: the file may have changed again
            reload_again = False
            start_reload()

    def handle_reload() -> None:
        nonlocal reload_again
        if on_reload is None or stopping:
            return
        if not ready():
            log.warning("SIGHUP ignored: the daemon is still starting")
            return
        if reload_running:
            reload_again = True
            return
        start_reload()

    loop.add_signal_handler(signal.SIGTERM, handle_stop, signal.SIGTERM)
    loop.add_signal_handler(signal.SIGINT, handle_stop, signal.SIGINT)
    loop.add_signal_handler(signal.SIGHUP, handle_reload)

    def remove() -> None:
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            with contextlib.suppress(ValueError, RuntimeError):
                loop.remove_signal_handler(signum)

    return remove
