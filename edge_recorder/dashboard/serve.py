"""`fleet serve`: wires ingest, history, the live hub and the web app into one asyncio service.

Threads: paho's network thread (ingest's cheap `on_message`), one worker thread that owns
every SQLite call (flush every `flush_s`, prune hourly, chart queries), and argon2 checks in
the default executor. Everything else, the fleet state above all, lives on the loop.
Before anything listens, the exposure rule is checked: beyond loopback only with TLS and a
login, else exit 78 naming what is missing. Under systemd (Type=notify) it sends READY=1
once it listens, a STATUS= line with the fleet counts, WATCHDOG=1 from the loop (so a stuck
loop gets the service restarted), and STOPPING=1; SIGTERM/SIGINT stop it with the history
flushed.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import ssl
import sys
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor

from aiohttp import web

from edge_recorder.config.errors import EX_CONFIG
from edge_recorder.dashboard.audit import AuditLog
from edge_recorder.dashboard.auth import Authenticator, UsersFileError
from edge_recorder.dashboard.commands import Commands
from edge_recorder.dashboard.config import DashboardConfig, exposure_problems
from edge_recorder.dashboard.fleetstate import FleetState
from edge_recorder.dashboard.history import History, Sample
from edge_recorder.dashboard.ingest import Ingest
from edge_recorder.dashboard.live import LiveHub
from edge_recorder.dashboard.validate import Valid
from edge_recorder.dashboard.web import Services, build_app, update_payload
from edge_recorder.fleet.connection import FleetSetupError
from edge_recorder.support.logs import get_logger
from edge_recorder.support.sdnotify import SystemdNotifier, watchdog_interval

log = get_logger(__name__)

PRUNE_EVERY_S = 3600.0
STATUS_EVERY_S = 10.0
EXIT_OK = 0
EXIT_FAILURE = 1


def _number(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _part(body: Mapping[str, object], key: str) -> Mapping[str, object]:
    value = body.get(key)
    return value if isinstance(value, Mapping) else {}


def sample_from_status(device_id: str, body: Mapping[str, object], at: float) -> Sample:
    """The chart values of one status (received at `at`)."""
    backlog, mic, system = _part(body, "backlog"), _part(body, "mic"), _part(body, "system")
    backlog_bytes, disk_free = _number(backlog.get("bytes")), _number(system.get("disk_free_bytes"))
    return Sample(
        device_id=device_id,
        at=at,
        backlog_bytes=None if backlog_bytes is None else int(backlog_bytes),
        mic_level_dbfs=_number(mic.get("level_dbfs")),
        disk_free_bytes=None if disk_free is None else int(disk_free),
        cpu_temp_c=_number(system.get("cpu_temp_c")),
    )


def tls_server_context(cfg: DashboardConfig) -> ssl.SSLContext | None:
    """HTTPS context from the configured certificate and key (None: plain HTTP, loopback)."""
    http = cfg.http
    if http.tls_cert_file is None or http.tls_key_file is None:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(str(http.tls_cert_file), str(http.tls_key_file))
    return context


def _refuse(lines: list[str]) -> int:
    print("edge-recorder fleet serve: refusing to start:", file=sys.stderr)
    for line in lines:
        print(f"  {line}", file=sys.stderr)
    return EX_CONFIG


async def serve(
    cfg: DashboardConfig,
    *,
    ready: Callable[[str], None] | None = None,
    stop: asyncio.Event | None = None,
    clock: Callable[[], float] = time.time,
) -> int:
    """Run the dashboard until SIGTERM/SIGINT (or `stop` is set); returns the exit status."""
    problems = exposure_problems(cfg)
    if problems:
        return _refuse(problems)
    try:
        auth = Authenticator(cfg)
        tls = tls_server_context(cfg)
    except (UsersFileError, ValueError) as exc:
        return _refuse([f"auth: {exc}"])
    except (OSError, ssl.SSLError) as exc:
        return _refuse([f"http TLS certificate or key unusable: {exc}"])

    loop = asyncio.get_running_loop()
    executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="history")
    history = History(
        cfg.history.path,
        retention_s=cfg.history.retention_days * 86400,
        sample_s=cfg.history.sample_s,
    )
    try:
        await loop.run_in_executor(executor, history.open)
    except Exception as exc:  # sqlite3.Error, OSError, a newer format: a person must act
        executor.shutdown()
        return _refuse([f"history.path {cfg.history.path}: {exc}"])

    state = FleetState(cfg.mqtt.topic_prefix, max_devices=cfg.limits.max_devices, clock=clock)
    notifier = SystemdNotifier()
    holder: dict[str, Services] = {}
    hub = LiveHub(
        lambda changed: update_payload(holder["services"], changed),
        max_clients=cfg.limits.max_stream_clients,
    )
    publish: list[Callable[[str, bytes], bool]] = []
    commands = Commands(
        cfg.mqtt.topic_prefix,
        lambda topic, payload: publish[0](topic, payload),
        timeout_s=cfg.limits.command_timeout_s,
    )

    def on_valid(item: Valid, received_at: float) -> None:
        body = item.body
        if body is None:
            return
        if item.leaf == "response":
            commands.resolve(body)
        elif item.leaf == "status":
            history.offer(sample_from_status(item.device_id, body, received_at))
        elif item.leaf == "events":
            history.offer_event(item.device_id, body)

    ingest = Ingest(
        cfg.mqtt, cfg.limits, state, on_valid=on_valid, on_changed=hub.notify, clock=clock
    )
    publish.append(ingest.publish)
    audit = AuditLog(cfg.audit_log)

    def extra_metrics() -> dict[str, float]:
        return {
            "edge_recorder_dashboard_mqtt_messages": float(ingest.received),
            "edge_recorder_dashboard_queue_dropped": float(ingest.queue_dropped),
            "edge_recorder_dashboard_history_dropped": float(history.dropped),
            "edge_recorder_dashboard_live_clients": float(hub.subscribers),
        }

    services = Services(
        cfg=cfg,
        state=state,
        broker_status=ingest.broker_status,
        auth=auth,
        audit=audit,
        commands=commands,
        hub=hub,
        history=history,
        history_executor=executor,
        clock=clock,
        extra_metrics=extra_metrics,
    )
    holder["services"] = services
    runner = web.AppRunner(build_app(services), access_log=None, shutdown_timeout=2.0)
    stop_event = stop or asyncio.Event()
    tasks: list[asyncio.Task[None]] = []
    try:
        ingest.start(loop)
    except FleetSetupError as exc:
        await loop.run_in_executor(executor, history.close)
        executor.shutdown()
        return _refuse([str(exc)])
    try:
        await runner.setup()
        site = web.TCPSite(runner, cfg.http.host, cfg.http.port, ssl_context=tls)
        try:
            await site.start()
        except OSError as exc:
            print(
                f"edge-recorder fleet serve: cannot listen on {cfg.http.host}:{cfg.http.port}: "
                f"{exc.strerror or exc}",
                file=sys.stderr,
            )
            return EXIT_FAILURE
        url = _url(runner, cfg, tls is not None)
        for signum in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(ValueError, RuntimeError, NotImplementedError):
                loop.add_signal_handler(signum, stop_event.set)
        tasks = [
            asyncio.create_task(_flush_loop(history, executor, cfg.history.flush_s, clock)),
            asyncio.create_task(_status_loop(notifier, state, ingest, clock)),
        ]
        interval = watchdog_interval()
        if interval is not None:
            tasks.append(asyncio.create_task(_watchdog_loop(notifier, interval / 2)))
        log.info("dashboard listening", url=url, mode=auth.mode)
        notifier.notify(f"READY=1\nSTATUS=listening on {url}")
        if ready is not None:
            ready(url)
        await stop_event.wait()
        notifier.notify("STOPPING=1\nSTATUS=stopping")
        log.info("dashboard stopping")
        return EXIT_OK
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for signum in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(ValueError, RuntimeError, NotImplementedError):
                loop.remove_signal_handler(signum)
        hub.close()
        await runner.cleanup()
        ingest.stop()
        written = await loop.run_in_executor(executor, history.flush)
        await loop.run_in_executor(executor, history.close)
        executor.shutdown()
        log.info("dashboard stopped", history_rows=written)


def _url(runner: web.AppRunner, cfg: DashboardConfig, tls: bool) -> str:
    """The listening URL, with the real port when port 0 asked for any free one."""
    port = cfg.http.port
    for address in runner.addresses:
        if isinstance(address, tuple) and len(address) >= 2:
            port = int(address[1])
            break
    host = cfg.http.host or "0.0.0.0"  # noqa: S104 - only for display
    shown = f"[{host}]" if ":" in host else host
    return f"{'https' if tls else 'http'}://{shown}:{port}/"


async def _flush_loop(
    history: History, executor: ThreadPoolExecutor, flush_s: float, clock: Callable[[], float]
) -> None:
    loop = asyncio.get_running_loop()
    last_prune = 0.0
    while True:
        await asyncio.sleep(flush_s)
        await loop.run_in_executor(executor, history.flush)
        now = clock()
        if now - last_prune >= PRUNE_EVERY_S:
            last_prune = now
            await loop.run_in_executor(executor, history.prune, now)


async def _status_loop(
    notifier: SystemdNotifier, state: FleetState, ingest: Ingest, clock: Callable[[], float]
) -> None:
    """The line `systemctl status` shows: counts only, never device details."""
    while True:
        counts = state.counts(clock())
        broker = "connected" if ingest.connected else "disconnected"
        notifier.notify(
            f"STATUS={counts.get('total', 0)} devices, {counts.get('offline', 0)} offline, "
            f"{counts.get('problem', 0)} with problems; broker {broker}"
        )
        await asyncio.sleep(STATUS_EVERY_S)


async def _watchdog_loop(notifier: SystemdNotifier, every_s: float) -> None:
    """WATCHDOG=1 from the loop itself: a blocked loop sends none and systemd restarts us."""
    while True:
        notifier.notify("WATCHDOG=1")
        await asyncio.sleep(every_s)
