"""The demo's pieces around the daemon: the emulator process, the device config that points
at it through the fault proxies, the sd_notify socket the daemon reports to, and a small
client for the daemon's control socket."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import socket
import time
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import tomli_w

from devtools.demo.procs import ChildProcess

EMULATOR_START_S = 60.0
REPLY_MAX = 16 * 1024 * 1024  # `sim led_history` grows with every LED change
_BYTES = re.compile(r" / \d+ B")


class DemoError(RuntimeError):
    """Something the demo needs did not come up; the message says what and where to look."""


def log_tail(path: Path, lines: int = 15) -> str:
    if not path.exists():
        return ""
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


# ---------------------------------------------------------------------------- emulator


class EmulatorProcess:
    """`edge-recorder emulator` as a child process plus its inspection API."""

    def __init__(self, child: ChildProcess, info: dict[str, str], log: Path) -> None:
        self.child = child
        self.info = info
        self.log = log
        self.http_url = info["http_url"]
        self.grpc_port = int(info["grpc_port"])
        self.http_port = int(info["http_port"])

    @staticmethod
    def args(run_dir: Path) -> list[str]:
        return [
            "emulator",
            "--data-dir", str(run_dir / "service"),
            "--grpc-port", "0",
            "--http-port", "0",
            "--device-config", str(run_dir / "emulator-device.toml"),
            "--log-level", "WARNING",
        ]  # fmt: skip

    @classmethod
    async def attach(cls, child: ChildProcess, log: Path) -> EmulatorProcess:
        """Wait for the started emulator's banner (its ports) and wrap it."""
        info: dict[str, str] = {}
        assert child.proc.stdout is not None
        try:
            async with asyncio.timeout(EMULATOR_START_S):
                while "device_config" not in info:
                    raw = await child.proc.stdout.readline()
                    if not raw:
                        raise DemoError(f"the emulator exited early:\n{log_tail(log)}")
                    parse_banner(raw.decode(errors="replace"), info)
        except TimeoutError:
            raise DemoError(f"the emulator did not start within {EMULATOR_START_S:g} s") from None
        return cls(child, info, log)

    async def _get(self, path: str) -> Any:
        timeout = aiohttp.ClientTimeout(total=5)
        async with (
            aiohttp.ClientSession(timeout=timeout) as http,
            http.get(self.http_url + path) as resp,
        ):
            if resp.status == 404:
                raise LookupError(path)
            resp.raise_for_status()
            if resp.content_type == "application/json":
                return await resp.json()
            return await resp.read()

    async def session(self, correlation_id: str) -> dict[str, Any]:
        return dict(await self._get(f"/_emulator/sessions/{correlation_id}"))

    async def recording_bytes(self, correlation_id: str, recording_id: str) -> bytes:
        data = await self._get(
            f"/_emulator/sessions/{correlation_id}/recordings/{recording_id}/raw"
        )
        return bytes(data)


def parse_banner(line: str, info: dict[str, str]) -> None:
    """The emulator's start-up lines: `aas-emulator k=v ...`, `device config: PATH`."""
    if line.startswith("aas-emulator "):
        for part in line.split()[1:]:
            key, _, value = part.partition("=")
            info[key] = value
    elif line.startswith("device config:"):
        info["device_config"] = line.split(":", 1)[1].strip()


# ---------------------------------------------------------------------------- device config


def device_config(
    emulator_toml: Path,
    *,
    emulator: EmulatorProcess,
    grpc_proxy_port: int,
    http_proxy_port: int,
    sections: dict[str, dict[str, Any]],
) -> dict[str, Any]:
    """The emulator's [uplink]/[auth]/[aas], re-pointed through the fault proxies, plus the
    demo's own sections."""
    tree: dict[str, Any] = tomllib.loads(emulator_toml.read_text())
    proxied_http = f"http://127.0.0.1:{http_proxy_port}"
    tree["aas"]["grpc_target"] = f"127.0.0.1:{grpc_proxy_port}"
    tree["aas"]["rest_url"] = proxied_http
    tree["aas"]["ws_url"] = f"ws://127.0.0.1:{http_proxy_port}"
    tree["auth"]["token_url"] = str(tree["auth"]["token_url"]).replace(
        emulator.http_url, proxied_http
    )
    for name, values in sections.items():
        tree.setdefault(name, {}).update(values)
    return tree


def write_toml(path: Path, tree: dict[str, Any]) -> Path:
    path.write_text(tomli_w.dumps(tree))
    return path


# ---------------------------------------------------------------------------- sd_notify


class NotifyReceiver:
    """Binds the NOTIFY_SOCKET the daemon sends READY=1 / STATUS= datagrams to."""

    def __init__(self, path: Path, on_status: Callable[[str], None]) -> None:
        self.path = path
        self.ready = asyncio.Event()
        self.last_status = ""
        self._on_status = on_status
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._sock.bind(str(path))
        self._sock.setblocking(False)
        asyncio.get_running_loop().add_reader(self._sock.fileno(), self._read)

    def _read(self) -> None:
        while True:
            try:
                data = self._sock.recv(65536)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return
            fields = dict(
                line.split("=", 1)
                for line in data.decode(errors="replace").splitlines()
                if "=" in line
            )
            if fields.get("READY") == "1":
                self.ready.set()
            status = fields.get("STATUS")
            shape = _BYTES.sub("", status or "")
            if status and shape != self.last_status:  # byte counts alone are not news
                self.last_status = shape
                self._on_status(status)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            asyncio.get_running_loop().remove_reader(self._sock.fileno())
        self._sock.close()
        with contextlib.suppress(OSError):
            self.path.unlink()


# ---------------------------------------------------------------------------- control socket


class ControlClient:
    """One JSON line per request over the daemon's control socket (what `ctl` sends)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    async def request(self, body: dict[str, Any], limit_s: float = 10.0) -> dict[str, Any]:
        async with asyncio.timeout(limit_s):
            reader, writer = await asyncio.open_unix_connection(str(self.path), limit=REPLY_MAX)
            try:
                writer.write(json.dumps(body).encode() + b"\n")
                await writer.drain()
                reply = await reader.readline()
            finally:
                writer.close()
        result = json.loads(reply)
        if not isinstance(result, dict):
            raise ValueError("unexpected reply from the control socket")
        return result

    async def ok(self, body: dict[str, Any], limit_s: float = 10.0) -> dict[str, Any]:
        reply = await self.request(body, limit_s)
        if not reply.get("ok"):
            raise DemoError(f"the daemon refused {body.get('cmd')}: {reply.get('error')}")
        return dict(reply.get("data") or {})

    async def status(self) -> dict[str, Any]:
        return await self.ok({"cmd": "status"})

    async def leds(self) -> dict[str, Any]:
        return await self.ok({"cmd": "sim", "led_history": True})

    async def press(self, button: str, hold_s: float = 0.1) -> None:
        await self.ok({"cmd": "sim", "press": button, "hold_s": hold_s})

    async def wait_for(
        self, predicate: Callable[[dict[str, Any]], bool], limit_s: float, what: str
    ) -> dict[str, Any]:
        """Poll the status until `predicate` holds, or DemoError at the deadline."""
        deadline = time.monotonic() + limit_s
        while True:
            status = await self.status()
            if predicate(status):
                return status
            if time.monotonic() > deadline:
                raise DemoError(f"timed out after {limit_s:g} s waiting for {what}")
            await asyncio.sleep(0.1)  # polling with a deadline
