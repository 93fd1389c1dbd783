"""`edge-recorder demo`: one scripted encounter, end to end, on simulated hardware.

Runs, all on loopback: mosquitto, the AAS emulator (a child process) behind two TCP fault
proxies (the same `FaultProxy` the chaos tests use: gRPC, and HTTP for REST + tokens), and the
real daemon (`edge-recorder run`, a child process) playing an espeak-ng conversation as its
microphone, with gpiozero mock pins pressed through the control socket's `sim` command.

The encounter (times in seconds of audio since the record button, divided by `--speed`):
press record; cut the network; pause with the privacy button while offline (recording #1 is
closed offline and waits in the spool); resume (recording #2, still offline); restore the
network (the backlog drains, live streaming catches up); press record to stop; the service
starts processing. Then the verdict (see `verdict.py`). Ctrl-C or SIGTERM at any point stops
every child (daemon first, so it seals its recording) and exits 130/143.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import signal
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from devtools.demo.keep import ENDLESS_MIC, ENDLESS_MIC_TEXT, WorkDirBusy, WorkDirLock, keep_hints
from devtools.demo.procs import ChildProcess, pid_alive, spawn
from devtools.demo.services import (
    ControlClient,
    DemoError,
    EmulatorProcess,
    NotifyReceiver,
    device_config,
    log_tail,
    write_toml,
)
from devtools.demo.speech import SpeechError, duration_s, speech_wav
from devtools.demo.timeline import DeliveryWatcher, MqttWatcher, Timeline, watch_leds
from devtools.demo.verdict import judge, render
from devtools.faultproxy import FaultProxy
from edge_recorder.dashboard.broker import Broker, BrokerError

DEVICE_ID = "demo-room-1"
TOPIC_PREFIX = "edge-recorder"
FAST_SPEED = 4.0
READY_TIMEOUT_S = 60.0
DRAIN_TIMEOUT_S = 60.0
STARTUP_BUDGET_S = 15.0  # wall seconds the WAV must cover before the record button

# (seconds of audio after the record button, action, what the timeline says)
SCRIPT: tuple[tuple[float, str, str], ...] = (
    (8.0, "cut", "network to the service CUT (both proxies close and refuse connections)"),
    (13.0, "privacy", "privacy button pressed: pause while offline"),
    (16.0, "privacy", "privacy button pressed again: resume (a new recording)"),
    (21.0, "restore", "network RESTORED"),
    (31.0, "record", "record button pressed again: stop"),
)
RECORDED_S = SCRIPT[-1][0]


@dataclass
class DemoOptions:
    work_dir: Path
    speed: float = 1.0
    keep: bool = False


class Demo:
    def __init__(self, options: DemoOptions, out: IO[str] | None = None) -> None:
        self.options = options
        self.timeline = Timeline(out)
        self.run_dir = options.work_dir / "run"
        self.children: list[ChildProcess] = []
        self.broker: Broker | None = None
        self.emulator: EmulatorProcess | None = None
        self.proxies: list[Any] = []
        self.mqtt: MqttWatcher | None = None
        self.notify: NotifyReceiver | None = None
        self.tasks: list[asyncio.Task[Any]] = []
        self.starting: list[asyncio.Task[ChildProcess]] = []
        self.short_dir = Path(tempfile.mkdtemp(prefix="er-demo-"))  # sun_path is 108 bytes
        self.signalled: int | None = None
        self.cleaning = False
        self.verdict_code: int | None = None  # set once the verdict is printed
        self.daemon: ChildProcess | None = None
        self.config_tree: dict[str, Any] = {}

    # ------------------------------------------------------------------------ lifecycle

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        main = asyncio.current_task()
        assert main is not None

        def on_signal(signum: int) -> None:
            # Cancel before printing: if stdout is a broken pipe (`| tee` killed by the same
            # Ctrl-C), nothing the handler prints may keep the children from being stopped.
            if self.signalled is None:
                self.signalled = signum
                if not self.cleaning:
                    main.cancel()
                self.timeline.say("demo", f"{signal.Signals(signum).name}: stopping everything")

        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, on_signal, signum)
        code = 2
        try:
            code = await self._run()
        except asyncio.CancelledError:
            if self.signalled is None:
                raise
        except (DemoError, BrokerError, SpeechError) as exc:
            self.timeline.say("demo", f"FAILED: {exc}")
        except (OSError, TimeoutError) as exc:  # e.g. the daemon died under the script
            log = self.run_dir / "daemon.log"
            self.timeline.say("demo", f"FAILED: {exc!r}; {log}:\n{log_tail(log)}")
        finally:
            self.cleaning = True
            await self._cleanup()
            for signum in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(signum)
        if self.signalled is not None and not (self.options.keep and self.verdict_code is not None):
            return 128 + self.signalled
        return code if self.verdict_code is None else self.verdict_code

    async def _cleanup(self) -> None:
        """Stop everything, daemon first; each step bounded; nothing left running."""
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, *self.starting, return_exceptions=True)
        for child in reversed(self.children):  # the daemon was started last
            code = await child.stop()
            self.timeline.say("setup", f"{child.name} stopped (pid {child.pid}, exit {code})")
        if self.mqtt is not None:
            self.mqtt.close()
        for proxy in self.proxies:
            await proxy.stop()
        broker_pid = self.broker.pid if self.broker is not None else None
        if self.broker is not None and broker_pid is not None:
            await asyncio.to_thread(self.broker.stop)
            self.timeline.say("setup", f"mosquitto stopped (pid {broker_pid})")
        if self.notify is not None:
            self.notify.close()
        shutil.rmtree(self.short_dir, ignore_errors=True)
        pids = [c.pid for c in self.children] + ([broker_pid] if broker_pid else [])
        left = [pid for pid in pids if pid_alive(pid)]
        for child in self.children:
            child.kill_group()
        if left:
            self.timeline.say("setup", f"WARNING: still running after stop: {left} (killed)")
        else:
            self.timeline.say("setup", "all child processes are gone")

    # ------------------------------------------------------------------------ setup

    async def _setup(self) -> ControlClient:
        say, speed = self.timeline.say, self.options.speed
        for line in intro(speed, self.options.keep):
            self.timeline.plain(line)
        shutil.rmtree(self.run_dir, ignore_errors=True)
        self.run_dir.mkdir(parents=True)
        need = (STARTUP_BUDGET_S + 5.0) * speed + RECORDED_S
        wav = await asyncio.to_thread(speech_wav, self.options.work_dir, need)
        say("setup", f"speech: {wav} ({duration_s(wav):.1f} s, espeak-ng, 16 kHz mono)")

        self.broker = Broker(self.run_dir / "mosquitto", detach=True)
        self.broker.start()  # in this thread: PR_SET_PDEATHSIG follows the forking thread
        say("setup", f"mosquitto on 127.0.0.1:{self.broker.port} (pid {self.broker.pid})")

        log = self.run_dir / "emulator.log"
        child = await self._spawn("emulator", EmulatorProcess.args(self.run_dir), log, None, True)
        self.emulator = await EmulatorProcess.attach(child, log)
        say(
            "setup",
            f"emulator: gRPC 127.0.0.1:{self.emulator.grpc_port}, HTTP {self.emulator.http_url}"
            f" (pid {self.emulator.child.pid})",
        )
        grpc = await FaultProxy("127.0.0.1", self.emulator.grpc_port).start()
        http = await FaultProxy("127.0.0.1", self.emulator.http_port).start()
        self.proxies = [grpc, http]
        say("setup", f"fault proxies: gRPC :{grpc.port} -> :{self.emulator.grpc_port}, "
            f"HTTP :{http.port} -> :{self.emulator.http_port}")  # fmt: skip

        socket_path = self.short_dir / "ctl.sock"
        self.config_tree = device_config(
            self.run_dir / "emulator-device.toml",
            emulator=self.emulator,
            grpc_proxy_port=grpc.port,
            http_proxy_port=http.port,
            sections=self._sections(wav, socket_path),
        )
        self.config_path = write_toml(self.run_dir / "device.toml", self.config_tree)
        self.mqtt = MqttWatcher(
            self.timeline, "127.0.0.1", self.broker.port, TOPIC_PREFIX, DEVICE_ID
        )
        self.notify = NotifyReceiver(
            self.short_dir / "notify.sock", lambda status: say("state", status)
        )
        await self._start_daemon()
        control = ControlClient(socket_path)
        self.tasks.append(asyncio.create_task(watch_leds(self.timeline, control.leds)))
        return control

    async def _start_daemon(self) -> ChildProcess:
        assert self.notify is not None
        env = {
            "GPIOZERO_PIN_FACTORY": "mock",
            "GPIOZERO_MOCK_PIN_CLASS": "mockpwmpin",
            "NOTIFY_SOCKET": str(self.notify.path),
        }
        config = self.config_path
        args = ["run", "--config", str(config)]
        self.notify.ready.clear()
        daemon = await self._spawn("daemon", args, self.run_dir / "daemon.log", env, False)
        self.daemon = daemon
        self.timeline.say(
            "setup", f"daemon: edge-recorder run --config {config} (pid {daemon.pid})"
        )
        await self._wait_ready(daemon)
        return daemon

    async def _spawn(
        self, name: str, args: list[str], log: Path, env: dict[str, str] | None, pipe: bool
    ) -> ChildProcess:
        """Start a child; even if the demo is interrupted meanwhile, the child is adopted
        (the start is shielded and `_cleanup` waits for it), so it is always stopped."""

        def adopt(task: asyncio.Task[ChildProcess]) -> None:
            if not task.cancelled() and task.exception() is None:
                self.children.append(task.result())

        task = asyncio.create_task(spawn(name, args, log=log, env=env, stdout_pipe=pipe))
        task.add_done_callback(adopt)
        self.starting.append(task)
        return await asyncio.shield(task)

    def _sections(self, wav: Path, socket_path: Path) -> dict[str, dict[str, Any]]:
        assert self.broker is not None
        return {
            "device": {"id": DEVICE_ID, "location": "edge-recorder demo"},
            "audio": {"source": "wav", "wav_path": str(wav), "speed": self.options.speed},
            "spool": {
                "dir": str(self.run_dir / "spool"),
                "key_file": str(self.run_dir / "spool.key"),
                "reserve_free_bytes": 64 * 1024**2,
            },
            "uplink": {
                "retry_initial_s": 0.2,
                "retry_max_s": 1.0,
                "connect_timeout_s": 2.0,
                "request_timeout_s": 5.0,
            },
            "panel": {"pin_factory": "mock", "privacy_button_pin": 27},
            "mqtt": {
                "host": "127.0.0.1",
                "port": self.broker.port,
                "topic_prefix": TOPIC_PREFIX,
                "birth_seq_file": str(self.run_dir / "mqtt-birth-seq"),
                "status_interval_s": 10.0,
            },
            "control": {"socket": str(socket_path)},
            "log": {"level": "INFO", "format": "logfmt"},
        }

    async def _wait_ready(self, daemon: ChildProcess) -> None:
        assert self.notify is not None
        log = self.run_dir / "daemon.log"
        ready = asyncio.ensure_future(self.notify.ready.wait())
        exited = asyncio.ensure_future(daemon.proc.wait())
        try:
            done, _ = await asyncio.wait(
                {ready, exited}, timeout=READY_TIMEOUT_S, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            ready.cancel()
            exited.cancel()
        if ready not in done:
            why = "exited" if exited in done else f"not ready within {READY_TIMEOUT_S:g} s"
            raise DemoError(f"the daemon {why}; {log}:\n{log_tail(log)}")
        self.timeline.say("daemon", "READY=1 (sd_notify)")

    # ------------------------------------------------------------------------ the encounter

    async def _run(self) -> int:
        control = await self._setup()
        assert self.emulator is not None and self.broker is not None
        say, speed = self.timeline.say, self.options.speed
        watcher = DeliveryWatcher(self.timeline, self.emulator.session)
        self.tasks.append(asyncio.create_task(watcher.run()))
        grpc, http = self.proxies

        say("demo", ">> record button pressed (mock GPIO pin, via the control socket)")
        await control.press("record")
        status = await control.wait_for(
            lambda s: s["state"] == "recording", 10.0, "the daemon to record"
        )
        started = time.monotonic()
        cid = status["correlation_id"]
        watcher.correlation_id = cid
        say("demo", f"encounter {status.get('encounter_ref')} recording at {speed:g}x real time")
        for at_s, action, text in SCRIPT:
            await asyncio.sleep(max(0.0, started + at_s / speed - time.monotonic()))  # pacing
            say("demo" if action in ("privacy", "record") else "network", ">> " + text)
            if action == "cut":
                grpc.cut()
                http.cut()
            elif action == "restore":
                grpc.pass_through()
                http.pass_through()
            else:
                await control.press(action)
        await self._wait_drained(control, cid, watcher)
        return await self._verdict(cid)

    async def _wait_drained(
        self, control: ControlClient, cid: str, watcher: DeliveryWatcher
    ) -> None:
        """Until the service started processing and the device's backlog is empty."""
        assert self.emulator is not None
        deadline = time.monotonic() + DRAIN_TIMEOUT_S
        while True:
            with contextlib.suppress(LookupError, OSError, ValueError):
                session = await self.emulator.session(cid)
                status = await control.status()
                if (
                    session.get("processingStarted")
                    and status["state"] == "idle"
                    and status["backlog"]["recordings"] == 0
                ):
                    watcher.report(session)  # the service's side first, then the summary
                    self.timeline.say("demo", "backlog drained; the device is idle")
                    return
            if time.monotonic() > deadline:
                raise DemoError(f"the backlog did not drain within {DRAIN_TIMEOUT_S:g} s")
            await asyncio.sleep(0.2)  # polling with a deadline

    async def _verdict(self, cid: str) -> int:
        assert self.emulator is not None
        session = await self.emulator.session(cid)
        held = {
            r["recordingId"]: await self.emulator.recording_bytes(cid, r["recordingId"])
            for r in session["recordings"]
        }
        log_text = (self.run_dir / "daemon.log").read_text(errors="replace")
        verdict = await asyncio.to_thread(judge, session, held, log_text, self.config_path)
        for line in render(verdict):
            self.timeline.plain(line)
        self.timeline.plain(
            f"  logs: {self.run_dir}/daemon.log, emulator.log, mosquitto/mosquitto.log"
        )
        self.verdict_code = 0 if verdict.holds else 1
        if self.options.keep:
            await self._keep_running()
        return self.verdict_code

    async def _keep_running(self) -> None:
        """Restart the daemon with an endless mic (the WAV is about to end, and a WAV mic
        that ended is `error no_mic`), then wait for Ctrl-C."""
        assert self.broker is not None and self.emulator is not None
        assert self.daemon is not None
        say = self.timeline.say
        self.timeline.plain("")
        say(
            "demo",
            "--keep: the speech WAV is nearly over; restarting the daemon with an endless mic",
        )
        code = await self.daemon.stop()
        say("setup", f"daemon stopped (pid {self.daemon.pid}, exit {code})")
        audio = self.config_tree.setdefault("audio", {})
        audio.pop("wav_path", None)
        audio.update(ENDLESS_MIC)
        write_toml(self.config_path, self.config_tree)
        await self._start_daemon()
        say("demo", f"mic now: {ENDLESS_MIC_TEXT}")
        hints = keep_hints(self.config_path, self.broker.port, TOPIC_PREFIX, self.emulator.http_url)
        for line in hints:
            self.timeline.plain(line)
        await asyncio.Event().wait()  # until a signal cancels the demo


def intro(speed: float, keep: bool = False) -> list[str]:
    pace = "real time" if speed == 1 else f"{speed:g}x real time"
    then = " (--keep: then an endless synthetic mic)" if keep else ""
    return [
        "edge-recorder demo: the real daemon on simulated hardware, everything on loopback",
        f"  mic: an espeak-ng conversation (WAV) at {pace}{then}",
        "  buttons and LEDs: gpiozero mock pins",
        "  service: the AAS emulator behind a TCP fault proxy; fleet: mosquitto + MQTT",
        "  script: record, cut the network, pause + resume offline, restore, stop, verify bytes",
        "",
    ]


#: Exit status when another demo runs in the same work directory (EX_TEMPFAIL: try later).
EXIT_WORK_DIR_BUSY = 75


async def run_demo(options: DemoOptions, out: IO[str] | None = None) -> int:
    lock = WorkDirLock(options.work_dir)
    try:
        lock.acquire()
    except WorkDirBusy as exc:
        Timeline(out).plain(f"edge-recorder demo: {exc}")
        return EXIT_WORK_DIR_BUSY
    try:
        return await Demo(options, out).run()
    finally:
        lock.release()
