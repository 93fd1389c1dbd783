"""`edge-recorder run`: composition and lifecycle of the recording appliance.

Start-up order matters and is the contract with systemd:
1. load the config — an invalid one exits 78 (EX_CONFIG) before anything touches the spool;
2. open the spool (its directory lock keeps a second daemon out) and close recordings a crash
   left open ("crash-recovered"), ending their encounters, so delivery queues them. A missing
   or wrong key, or a spool the service user may not access, exits 77 (EX_NOPERM); a spool
   another process holds exits 75 (EX_TEMPFAIL). Statuses a person must act on are listed in
   the unit's `RestartPreventExitStatus=` (one table: `edge_recorder/support/exitcodes.py`),
   and each exit first sets STATUS= so `systemctl status` says why. The LED cannot show it:
   the panel is built after the spool opens, and gpiozero releases the pins when the process
   exits, so a pattern would last milliseconds; a dark panel plus the unit's failed state is
   the signal;
3. build the controller, the panel (or `NullPanel`), the capture thread, the delivery engine,
   the control socket and, when `mqtt.host` is set, the fleet reporter — one asyncio loop;
4. start capture; once the source has been *tried*, send `READY=1`. A missing mic does not
   block READY (STATUS= says "no mic"): failing start-up would make systemd crash-loop a
   device whose mic is simply unplugged, while a running daemon retries it and still
   delivers the backlog.
SIGTERM ends the encounter (recording closed with reason "shutdown"), stops capture, flushes
and closes the spool, and exits 0. SIGHUP re-reads the config: an invalid file is logged and
ignored; a valid one is applied where it can be live (log, delivery, duration limits) and the
rest is logged as needing a restart. The `reload` command (ctl, MQTT) validates the file
before it answers: an invalid one is refused with its problems (ok=false), never "ok" and then
silently ignored.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

from edge_recorder.app.extras import load_usable_config
from edge_recorder.app.periodic import PeriodicWork, status_line
from edge_recorder.app.recorder import MqttHandler, Recorder
from edge_recorder.app.service import ServiceNotifier, WatchdogSupervisor, install_signal_handlers
from edge_recorder.audio.array.stage import calibration_note
from edge_recorder.capture.worker import AudioWorker
from edge_recorder.config.loader import ConfigError, print_config_error
from edge_recorder.config.model import Config
from edge_recorder.control.server import ControlError, ControlServer
from edge_recorder.delivery.engine import DeliveryEngine
from edge_recorder.encounter import events as ev
from edge_recorder.encounter.controller import EncounterController, Limits
from edge_recorder.fleet.reporter import FleetReporter
from edge_recorder.panel.gpio import (
    NullPanel,
    Panel,
    PanelError,
    PanelOutput,
    PinFactory,
    make_pin_factory,
)
from edge_recorder.panel.simulator import PanelSimulator, SimControlServer, is_mock
from edge_recorder.spool import Spool, SpoolError, SpoolKeyError, SpoolLocked
from edge_recorder.status import CommandResult
from edge_recorder.support import exitcodes
from edge_recorder.support.logs import get_logger, setup_logging
from edge_recorder.uplinks.registry import DELIVERY_SECTIONS

log = get_logger(__name__)

CAPTURE_MAX_AGE_S = 5.0  # the capture thread's heartbeat may be this old
READY_WAIT_S = 5.0  # READY=1 waits at most this long for the first capture attempt
LIVE_SECTIONS = {"log", *DELIVERY_SECTIONS}  # applied by SIGHUP without a restart
# gRPC's EventEngine client (on by default in grpcio 1.6x-1.8x) runs a live stream's socket
# I/O on its own thread pool: ~70 extra thread wake-ups a second while streaming, a third of
# a percent of a core on the benchmark machine. gRPC's long-standing poller does the same I/O
# on the polling thread grpc.aio already runs. An operator's own GRPC_EXPERIMENTS (even
# empty) wins; a grpcio without this experiment only logs that it does not know it.
GRPC_EXPERIMENTS = "-event_engine_client"


def main(config_path: Path) -> int:
    """The `run` command: returns the process exit code."""
    os.environ.setdefault("GRPC_EXPERIMENTS", GRPC_EXPERIMENTS)  # before grpc is imported
    try:
        config = load_usable_config(config_path)
    except ConfigError as error:
        print_config_error(error)
        first = error.lines[0].split(": ", 1)[0] if error.lines else str(config_path)
        ServiceNotifier().status(  # the key only: `systemctl status` is readable by anyone
            f"invalid configuration ({first}; {len(error.lines)} problem(s), see the journal); "
            f"exit {exitcodes.CONFIG.code}, not restarted until fixed"
        )
        return exitcodes.CONFIG.code
    setup_logging(config.log.level, config.log.format)
    return asyncio.run(Daemon(config, config_path).run())


def spool_exit(exc: BaseException) -> tuple[exitcodes.ExitCode, str]:
    """The exit status and a one-line reason for a spool that cannot be opened."""
    if isinstance(exc, SpoolKeyError):
        return exitcodes.NO_ACCESS, f"spool key problem: {exc}"
    if isinstance(exc, SpoolLocked):
        return exitcodes.SPOOL_LOCKED, str(exc)
    cause = exc.__cause__ or exc.__context__  # a SpoolIOError made from an OSError
    if isinstance(cause, OSError) and cause.errno in _NO_ACCESS_ERRNOS:
        return exitcodes.NO_ACCESS, str(exc)
    if isinstance(exc, OSError):
        reason = f"{exc.strerror or type(exc).__name__}: {exc.filename or 'the spool'}"
        if exc.errno in _NO_ACCESS_ERRNOS:  # permissions or the path: a person must act
            return exitcodes.NO_ACCESS, reason
        return exitcodes.FAILURE, reason
    return exitcodes.FAILURE, str(exc)


# A spool directory the daemon cannot use until someone changes the system (EIO or ENOSPC,
# by contrast, may pass, so they exit 1 and are restarted).
_NO_ACCESS_ERRNOS = frozenset(
    {errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOTDIR, errno.EEXIST, errno.ELOOP}
)


def recover(spool: Spool) -> int:
    """Close what the last process left open and end its encounters; returns the count."""
    recovered = spool.recovered_open_recordings()
    for rec in recovered:
        spool.close_recovered(rec.id)
        log.warning("recording left open by a crash closed", recording_id=rec.id, seq=rec.seq)
    with spool.lock:  # no encounter is open in a process that just started
        orphans = [cid for cid, entry in spool.ledger.encounters.items() if not entry.ended]
    for cid in orphans:
        spool.end_encounter(cid)
    if recovered or orphans:
        log.warning("crash recovery", recordings_count=len(recovered), encounters=len(orphans))
    return len(recovered)


class Daemon(PeriodicWork):
    def __init__(self, config: Config, config_path: Path) -> None:
        self.config = config
        self.config_path = config_path
        self.notifier = ServiceNotifier()
        self.watchdog = WatchdogSupervisor.from_environment(self.notifier)
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._last_line = ""
        self._service: dict[str, ev.Event] = {}  # the last health event sent, by kind
        self._factory: PinFactory | None = None
        self._fleet: FleetReporter | None = None
        self._delivery_task: asyncio.Task[None] | None = None
        self._ready = False
        self._reload_lock = asyncio.Lock()
        self._storage_problem: str | None = None  # the spool's storage fault, as last logged
        self._health_error: str | None = None  # the last unexpected health-check failure
        self._timers_changed: asyncio.Event | None = None  # set on every dispatch (_ticker)

    # --- lifecycle ----------------------------------------------------------------------------

    async def run(self) -> int:
        cfg = self.config
        try:
            self.spool = await asyncio.to_thread(Spool.open, cfg.spool)
        except (SpoolError, OSError) as exc:
            code, reason = spool_exit(exc)
            log.error(
                "cannot open the spool",
                error=reason,
                spool_dir=str(cfg.spool.dir),
                exit_status=code.code,
                restart=not code.person_must_act,
            )
            action = "not restarted until fixed" if code.person_must_act else "restarting"
            self.notifier.status(f"cannot open the spool: {reason}; exit {code.code}, {action}")
            return code.code
        try:
            return await self._run()
        finally:
            with contextlib.suppress(SpoolError):
                await asyncio.to_thread(self.spool.close)
            log.info("daemon stopped")

    async def _run(self) -> int:
        cfg, loop = self.config, asyncio.get_running_loop()
        remove_handlers = install_signal_handlers(  # early: a SIGTERM at start-up is clean too
            loop,
            on_stop=self._stop.set,
            on_reload=self._reload,
            notifier=self.notifier,
            ready=lambda: self._ready,
        )
        await asyncio.to_thread(recover, self.spool)
        self.delivery = self._make_delivery(cfg)
        controller = EncounterController(
            Limits.from_config(cfg),
            encounter_ref=self.spool.encounter_ref,  # keyed per device
        )
        capture_beat = self.watchdog.register("capture", max_age_s=CAPTURE_MAX_AGE_S)
        self.worker = AudioWorker(cfg, self.spool, lambda e: self.recorder.post(e), capture_beat)
        self.recorder = Recorder(
            controller,
            NullPanel(),
            self.worker,
            self.spool,
            self.delivery,
            on_change=self._dispatched,
        )
        self.recorder.extra_commands.update(
            ping=lambda: CommandResult(ok=True, state=controller.state, data={"pong": True}),
            reload=self._reload_command,
            spool_retry=self._spool_retry,
        )
        self.recorder.panel = self._make_panel(cfg, loop)
        self.recorder.show_current()
        self.control = self._make_control(cfg)
        try:
            await self.control.start()
        except ControlError as exc:  # ctl will not work, but buttons and MQTT still do
            log.error("control socket unavailable", error=str(exc))
        await asyncio.to_thread(calibration_note, cfg.audio)  # said at start, not at 1st recording
        self.worker.start()
        await asyncio.to_thread(self.worker.attempted.wait, READY_WAIT_S)
        self._delivery_task = loop.create_task(self.delivery.run(), name="delivery")
        self._spawn(self.watchdog.run(), self._ticker(), self._health())
        await self._start_fleet(cfg)
        status = self.recorder.status()
        self._last_line = status_line(status)
        if not self._stop.is_set():  # READY after STOPPING would tell systemd we run again
            self.notifier.ready(self._last_line)
            self._ready = True
            log.info("daemon ready", state=status.state, mic_present=status.mic.present)
        try:
            await self._stop.wait()
        finally:
            remove_handlers()
            await self._shutdown()
        return 0

    async def _shutdown(self) -> None:
        """Close the encounter, stop capture and every service; bounded to a few seconds."""
        log.info("shutting down")
        self.recorder.dispatch(ev.Shutdown())
        await self.recorder.wait_closed(4.0)
        if not await asyncio.to_thread(self.worker.stop, 3.0):
            log.error("capture thread did not stop; closing the spool anyway")
        for task in self._tasks:
            task.cancel()
        await self._stop_delivery()
        if self._fleet is not None:
            with contextlib.suppress(Exception):
                self._fleet.event("stopping")
                await self._fleet.stop(2.0)
        await self.control.close()
        self.recorder.panel.close()
        if self._factory is not None:
            with contextlib.suppress(Exception):
                self._factory.close()
        self.notifier.stopping("stopping: spool flushed")
        await asyncio.to_thread(self.notifier.flush, 1.0)

    def _spawn(self, *coros: Coroutine[Any, Any, None]) -> None:
        loop = asyncio.get_running_loop()
        self._tasks.extend(loop.create_task(coro) for coro in coros)

    # --- parts --------------------------------------------------------------------------------

    def _make_delivery(self, cfg: Config) -> DeliveryEngine:
        return DeliveryEngine(cfg, self.spool)

    async def _stop_delivery(self) -> None:
        task, self._delivery_task = self._delivery_task, None
        if task is not None:
            task.cancel()
            await asyncio.wait({task}, timeout=2.0)
        try:
            await asyncio.wait_for(self.delivery.aclose(), 2.0)
        except Exception as exc:
            log.warning("delivery did not close cleanly", error=str(exc))

    def _make_panel(self, cfg: Config, loop: asyncio.AbstractEventLoop) -> PanelOutput:
        if not cfg.panel.enabled:
            return NullPanel()
        try:
            self._factory = make_pin_factory(cfg.panel.pin_factory)
            return Panel(cfg.panel, self.recorder.on_button, loop, pin_factory=self._factory)
        except PanelError as exc:  # record without buttons rather than not at all
            log.error("panel unavailable; running without buttons and LEDs", error=str(exc))
            return NullPanel()

    def _make_control(self, cfg: Config) -> ControlServer:
        if self._factory is not None and is_mock(self._factory):
            indicators = self.recorder.indicators
            sim = PanelSimulator(self._factory, cfg.panel, lambda: list(indicators))
            log.warning("panel simulation enabled on the control socket (mock pins)")
            return SimControlServer(self.recorder, cfg.control, sim)
        return ControlServer(self.recorder, cfg.control)

    async def _start_fleet(self, cfg: Config) -> None:
        if not cfg.mqtt.host:
            return
        try:
            self._fleet = FleetReporter(cfg, self.recorder.status, MqttHandler(self.recorder))
            await self._fleet.start()
            self.recorder.fleet = self._fleet
            self._fleet.event("started")
        except Exception as exc:  # MQTT is for dashboards: never a reason not to record
            log.error("fleet reporting unavailable", error=str(exc))
            self._fleet = None

    # --- commands and reload ------------------------------------------------------------------

    def _reload_command(self) -> CommandResult:
        """`reload` over ctl or MQTT: the file is validated before the answer, so an invalid
        one is refused with its problems and the running config kept. Reading and validating
        a config takes a few milliseconds, so it runs on the loop; applying it runs after."""
        state = self.recorder.controller.state
        if not self._ready:
            return CommandResult(
                ok=False, code="starting", error="the daemon is still starting", state=state
            )
        try:
            new = self._load_new_config()
        except ConfigError as error:
            log.error(
                "config reload rejected; keeping the running config",
                config_file=str(error.source),
                problems="; ".join(error.lines),
            )
            return CommandResult(
                ok=False, code="invalid_config", error=reload_refusal(error), state=state
            )
        self._spawn(self._apply(new))
        return CommandResult(ok=True, state=state, data={"reload": True})

    def _spool_retry(self) -> CommandResult:
        ids = self.spool.retry()
        self.delivery.wake()
        state = self.recorder.controller.state
        return CommandResult(ok=True, state=state, data={"recordings_count": len(ids)})

    def _load_new_config(self) -> Config:
        """The config file as it is now, or ConfigError. Nothing else escapes: an exception
        from the loader must not reach a log with its arguments (a UnicodeDecodeError holds
        the whole file)."""
        try:
            return load_usable_config(self.config_path)
        except ConfigError:
            raise
        except Exception as exc:
            problem = f"cannot load the config ({type(exc).__name__})"
            raise ConfigError([problem], str(self.config_path)) from None

    async def _reload(self) -> None:
        """SIGHUP: apply a valid config; keep the running one (and say why) otherwise."""
        if not self._ready:
            log.warning("config reload ignored: the daemon is still starting")
            return
        try:
            new = await asyncio.to_thread(self._load_new_config)
        except ConfigError as error:
            log.error(
                "config reload rejected; keeping the running config",
                config_file=str(error.source),
                problems="; ".join(error.lines),
            )
            return
        await self._apply(new)

    async def _apply(self, new: Config) -> None:
        """Make `new` the running config (one reload at a time: SIGHUP and ctl may race)."""
        async with self._reload_lock:
            try:
                await self._apply_now(new)
            except Exception as exc:  # never "Task exception was never retrieved"
                log.error("config reload failed", error=type(exc).__name__)

    async def _apply_now(self, new: Config) -> None:
        old, self.config = self.config, new
        changed = sorted(
            name for name in Config.model_fields if getattr(old, name) != getattr(new, name)
        )
        if new.log != old.log:
            setup_logging(new.log.level, new.log.format)
        if DELIVERY_SECTIONS & set(changed):
            await self._stop_delivery()
            self.delivery = self.recorder.delivery = self._make_delivery(new)
            loop = asyncio.get_running_loop()
            self._delivery_task = loop.create_task(self.delivery.run(), name="delivery")
            self._service.pop("limits", None)
            if self.delivery.snapshot().service_limits is None:
                self.recorder.dispatch(
                    ev.ServiceLimits(new.aas.max_duration_s, new.aas.warn_before_s)
                )
        later = [name for name in changed if name not in LIVE_SECTIONS]
        if later:
            log.warning("config changes need a restart to apply", sections=",".join(later))
        log.info("config reloaded", changed=",".join(changed) or "nothing")


def reload_refusal(error: ConfigError, limit: int = 600) -> str:
    """The reason a `reload` reply gives: the problems, bounded (MQTT carries it too)."""
    text = f"invalid configuration, running config kept: {'; '.join(error.lines)}"
    return text if len(text) <= limit else text[: limit - 1] + "…"
