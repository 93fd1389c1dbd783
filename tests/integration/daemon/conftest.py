"""The real daemon (`python -m edge_recorder run`) as a subprocess, against the in-process AAS
emulator, with a WAV source played at `audio.speed`, gpiozero mock pins and an sd_notify
socket bound by the test. Helpers only wait on conditions (never sleep to synchronise).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tomli_w

from devtools.demo.verdict import reencode
from edge_recorder.config.loader import load_config
from tests.integration.systemd.conftest import NotifySocket
from tests.support.emulator import (
    CUSTOMER_ID,
    PARTNER_ID,
    PRODUCT_ID,
    EmulatorHandle,
    MakeEmulator,
)
from tests.support.helpers import wait_for
from tests.support.mosquitto import Mosquitto

SPEED = 8.0  # the WAV plays 8x faster than real time
SENTENCE = "The patient reports a mild headache since Tuesday, no fever, and sleeps well."


@pytest.fixture(scope="session")
def speech_wav(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """~3 min of real espeak-ng speech (22.05 kHz, so the resampler runs too): ~23 s of wall
    time at SPEED, so a loaded CI machine does not reach the end of the "mic" mid-test."""
    folder = tmp_path_factory.mktemp("speech")
    one, long = folder / "one.wav", folder / "speech.wav"
    subprocess.run(["espeak-ng", "-w", str(one), SENTENCE], check=True, capture_output=True)
    subprocess.run(
        ["sox", str(one), str(long), "pad", "0", "1", "repeat", "30"],
        check=True,
        capture_output=True,
    )
    return long


@pytest.fixture
def make_aas_emulator(make_aas_emulator: MakeEmulator) -> MakeEmulator:
    """Tests of the device meet the emulator at `fidelity = "live"` unless they ask otherwise:
    no open is ever answered and the WebSocket answers only a delegated user token, as the
    live service was observed to behave."""

    async def make(**overrides: Any) -> EmulatorHandle:
        overrides.setdefault("fidelity", "live")
        return await make_aas_emulator(**overrides)

    return make


@pytest.fixture
def short_dir() -> Iterator[Path]:
    """A short directory for the control socket (sun_path is 108 bytes; tmp_path is long)."""
    path = Path(tempfile.mkdtemp(prefix="er-d-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def daemon_config(
    emu: EmulatorHandle | None,
    tmp_path: Path,
    sock_dir: Path,
    wav: Path,
    **sections: dict[str, Any],
) -> dict[str, Any]:
    """The config tree of a device pointed at `emu` (None: a complete config for an
    unreachable service; drop `aas`/`auth` from the tree for an incomplete one)."""
    secret = tmp_path / "client-secret"
    secret.write_text((emu.client_secret if emu else "unused") + "\n")
    tree: dict[str, Any] = {
        "device": {"id": "room-7"},
        "audio": {"source": "wav", "wav_path": str(wav), "speed": SPEED},
        "vad": {"engine": "energy"},
        "spool": {
            "dir": str(tmp_path / "spool"),
            "key_file": str(tmp_path / "spool.key"),
            "fsync_interval_s": 0.5,
        },
        "control": {"socket": str(sock_dir / "ctl.sock")},
        "panel": {"pin_factory": "mock"},
        "log": {"level": "INFO", "format": "logfmt"},
        "uplink": {
            "request_timeout_s": 5.0,
            "connect_timeout_s": 2.0,
            "retry_initial_s": 0.2,
            "retry_max_s": 1.0,
        },
    }
    if emu is not None:
        tree["auth"] = {
            "mode": "client_credentials",
            "token_url": emu.token_url,
            "client_id": emu.client_id,
            "client_secret_file": str(secret),
        }
        if emu.settings.fidelity == "live":
            # What works live: a site's delegated user token on the WebSocket; REST keeps the
            # client-credentials token. An open goes unanswered, so do not wait long for it.
            delegated = tmp_path / "delegated-token"
            user_token, _ = emu.emulator.ctx.issuer.mint(emu.client_id, app_only=False)
            delegated.write_text(user_token + "\n")
            tree["auth"]["delegated_token_file"] = str(delegated)
            tree["uplink"]["live_transport"] = "websocket"
        tree["aas"] = {
            "open_answer_s": 1.0,
            "grpc_target": emu.grpc_target,
            "rest_url": emu.http_url,
            "ws_url": emu.ws_url,
            "tls": False,
            "customer_id": emu.customer_id,
            "partner_id": emu.partner_id,
            "product_id": emu.product_id,
            "external_user_id": emu.external_user_id,
        }
    else:  # a complete config for a service nobody answers (port 9 refuses at once)
        tree["auth"] = {
            "mode": "client_credentials",
            "token_url": "http://127.0.0.1:9/oauth2/token",
            "client_id": "unreachable",
            "client_secret_file": str(secret),
        }
        tree["aas"] = {
            "grpc_target": "127.0.0.1:9",
            "rest_url": "http://127.0.0.1:9",
            "tls": False,
            "customer_id": CUSTOMER_ID,
            "partner_id": PARTNER_ID,
            "product_id": PRODUCT_ID,
            "external_user_id": "unreachable-user",
        }
    for name, values in sections.items():
        tree.setdefault(name, {}).update(values)
    return tree


def mqtt_section(broker: Mosquitto, tmp_path: Path, **extra: Any) -> dict[str, Any]:
    """The [mqtt] section of a device reporting to `broker` (its birth counter in tmp_path)."""
    return {
        "host": broker.host,
        "port": broker.port,
        "birth_seq_file": str(tmp_path / "birth-seq"),
        **extra,
    }


def write_config(path: Path, tree: dict[str, Any]) -> Path:
    path.write_text(tomli_w.dumps(tree))
    return path


class DaemonProcess:
    """One `edge-recorder run` process: its log, its sd_notify messages, its socket."""

    def __init__(
        self, config: Path, notify: NotifySocket, log: Path, env: dict[str, str] | None = None
    ) -> None:
        self.config = config
        self.extra_env = env or {}
        self.notify = notify
        self.log_path = log
        self.proc: asyncio.subprocess.Process | None = None
        self.socket = Path(load_config(config).control.socket)

    async def start(self) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("EDGE_RECORDER")}
        env.pop("JOURNAL_STREAM", None)
        env.update(
            NOTIFY_SOCKET=self.notify.address,
            GPIOZERO_PIN_FACTORY="mock",
            GPIOZERO_MOCK_PIN_CLASS="mockpwmpin",
        )
        env.update(self.extra_env)
        with self.log_path.open("ab") as log:
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "edge_recorder", "run", "--config", str(self.config),
                env=env, stdout=log, stderr=log,
            )  # fmt: skip

    @property
    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    async def pump_notify(self) -> None:
        """Receive every sd_notify datagram into `notify.history` as it arrives. Must run for
        the daemon's whole life: an AF_UNIX datagram queue holds only a few messages
        (net.unix.max_dgram_qlen) and sd_notify blocks the sender when it is full."""
        while True:
            await self.notify.arecv(3600)

    def notified(self) -> list[dict[str, str]]:
        return [fields for _, fields in self.notify.history]

    async def wait_notify(
        self, predicate: Callable[[dict[str, str]], bool], timeout: float = 20.0, after: int = 0
    ) -> dict[str, str]:
        """The first sd_notify message (from index `after`) matching `predicate`."""
        deadline = time.monotonic() + timeout
        while True:
            for fields in self.notified()[after:]:
                if predicate(fields):
                    return fields
            if time.monotonic() > deadline:
                raise AssertionError(f"no matching sd_notify message; log:\n{self.log[-3000:]}")
            await asyncio.sleep(0.02)

    async def ready(self) -> dict[str, str]:
        return await self.wait_notify(lambda f: f.get("READY") == "1")

    async def request(self, body: dict[str, Any], timeout: float = 15.0) -> dict[str, Any]:
        """One JSON line over the control socket (as `ctl` sends it)."""
        reader, writer = await asyncio.open_unix_connection(str(self.socket))
        try:
            writer.write(json.dumps(body).encode() + b"\n")
            await writer.drain()
            reply = await asyncio.wait_for(reader.readline(), timeout)
        finally:
            writer.close()
        return dict(json.loads(reply))

    async def ctl(self, *args: str) -> tuple[int, str, str]:
        """The real `edge-recorder ctl` client."""
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "edge_recorder", "ctl", *args, "--socket", str(self.socket),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )  # fmt: skip
        out, err = await asyncio.wait_for(proc.communicate(), 30)
        assert proc.returncode is not None
        return proc.returncode, out.decode(), err.decode()

    async def start_encounter(self) -> str:
        """`ctl start` through the real client; the new encounter's correlation id."""
        code, out, err = await self.ctl("start")
        assert code == 0, err
        return str(json.loads(out)["data"]["correlation_id"])

    async def status(self) -> dict[str, Any]:
        reply = await self.request({"cmd": "status"})
        assert reply["ok"], reply
        return dict(reply["data"])

    async def wait_state(self, state: str, timeout: float = 15.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            status = await self.status()
            if status["state"] == state:
                return status
            if time.monotonic() > deadline:
                raise AssertionError(f"state stayed {status['state']!r}, wanted {state!r}")
            await asyncio.sleep(0.05)

    async def signal(self, signum: signal.Signals) -> None:
        assert self.proc is not None
        self.proc.send_signal(signum)

    async def wait_exit(self, timeout: float = 15.0) -> int:
        assert self.proc is not None
        return await asyncio.wait_for(self.proc.wait(), timeout)

    async def stop(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.proc.wait(), 10)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()


StartDaemon = Callable[..., Awaitable[DaemonProcess]]


@pytest.fixture
async def start_daemon(tmp_path: Path) -> AsyncIterator[StartDaemon]:
    """`await start_daemon(config_path, env={...})` → a running daemon with its own NOTIFY_SOCKET
    (READY not awaited); every daemon is stopped at teardown."""
    started: list[tuple[DaemonProcess, NotifySocket, asyncio.Task[None]]] = []

    async def start(config: Path, env: dict[str, str] | None = None) -> DaemonProcess:
        notify = NotifySocket()
        daemon = DaemonProcess(config, notify, tmp_path / f"daemon-{len(started)}.log", env)
        pump = asyncio.get_running_loop().create_task(daemon.pump_notify())
        started.append((daemon, notify, pump))
        await daemon.start()
        return daemon

    yield start
    for daemon, notify, pump in started:
        await daemon.stop()
        pump.cancel()
        await asyncio.gather(pump, return_exceptions=True)
        notify.close()


_CLOSED = re.compile(
    r'msg="recording audio closed" recording_id=(?P<id>\S+) reason=(?P<reason>\S+) '
    r"start_frame=(?P<start>-?\d+) end_frame=(?P<end>\d+) length_bytes=(?P<length>\d+)"
)


def closed_recordings(log: str) -> list[dict[str, Any]]:
    """The capture thread's "recording audio closed" lines: id, reason, frame range, length."""
    return [
        {
            "id": m["id"],
            "reason": m["reason"],
            "start": int(m["start"]),
            "end": int(m["end"]),
            "length": int(m["length"]),
        }
        for m in _CLOSED.finditer(log)
    ]


def expected_bytes(config: Path, start_frame: int, end_frame: int) -> bytes:
    """What the pipeline makes of the WAV's frames [start, end): the bytes a recording of that
    stretch must hold, computed independently of the daemon (the demo's verdict does the same)."""
    (data,) = reencode(config, [(start_frame, end_frame)])
    return data


def pcm_rms(data: bytes) -> float:
    samples = np.frombuffer(data, dtype="<i2").astype(np.float64)
    return float(np.sqrt(np.mean(samples**2))) if samples.size else 0.0


def assert_pieces_tile(expected: bytes, pieces: list[tuple[int, bytes]]) -> int:
    """Streams of a service without byte acks (Dice, AWS): each piece (start offset, bytes
    received) must equal the recording there, the pieces in offset order must leave no gap and
    cover it all. Returns the overlap: bytes the service received twice."""
    reached = overlap = 0
    for start, got in sorted(pieces, key=lambda piece: piece[0]):
        assert start <= reached, f"gap: stream starts at {start}, {reached} bytes covered"
        assert got == expected[start : start + len(got)], f"wrong bytes at offset {start}"
        overlap += max(0, reached - start)
        reached = max(reached, start + len(got))
    assert reached == len(expected), f"{reached} of {len(expected)} bytes delivered"
    return overlap


async def record_offline_then_deliver(
    daemon: DaemonProcess, proxy: Any, min_bytes: int, handed_over_timeout: float = 30.0
) -> None:
    """The second half of the services' cut scenario: the network goes down, a pause/resume
    opens a recording that lives entirely offline (so it goes up store-and-forward), the
    encounter stops, the network comes back, and the encounter is handed to processing."""
    proxy.cut()
    for command in ("pause", "resume"):
        code, _, err = await daemon.ctl(command)
        assert code == 0, err

    async def offline() -> bool:
        return not (await daemon.status())["online"]

    # The new recording's first use of the network is what shows the outage (a device that
    # is not delivering anything has nothing to notice it with, short of its offline probe).
    await wait_for(offline, what="the daemon noticing the outage")
    resumed_at = (await daemon.status())["backlog"]["bytes"]

    async def recorded() -> bool:
        return bool((await daemon.status())["backlog"]["bytes"] > resumed_at + min_bytes)

    await wait_for(recorded, what="a recording made offline")
    code, _, err = await daemon.ctl("stop")
    assert code == 0, err
    await daemon.wait_state("idle")
    proxy.pass_through()

    async def handed_over() -> bool:
        return 'msg="encounter handed to processing"' in daemon.log

    await wait_for(handed_over, timeout=handed_over_timeout, what="the encounter processed")
