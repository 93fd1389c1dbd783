"""A mosquitto broker on loopback for `fleet serve --demo`, the demo, the benchmarks and tests.

One process in the foreground, its config and log in a work directory, a free port, and a
wait with a deadline until it accepts connections (never a fixed sleep). Subclasses add
config lines (TLS, password files: see tests/support/mosquitto.py).
"""

from __future__ import annotations

import os
import pwd
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

START_ATTEMPTS = 5  # a free port can be taken between choosing and binding it


class BrokerError(RuntimeError):
    """mosquitto could not be started (missing binary, bad config, no port)."""


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def die_with_parent() -> None:
    """preexec_fn: the child gets SIGTERM when the process that started it dies, so even a
    SIGKILLed demo leaves no broker, emulator or daemon behind (Linux PR_SET_PDEATHSIG)."""
    import ctypes

    pr_set_pdeathsig = 1
    ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


@dataclass
class Broker:
    """One mosquitto process; `start()`, `stop()`, `restart()` on the same port.

    `detach` puts it in its own session (a Ctrl-C on the terminal reaches only the program
    that owns it, which then stops it in order) and ties its life to that program's.
    """

    workdir: Path
    host: str = "127.0.0.1"
    port: int = 0
    detach: bool = False
    process: subprocess.Popen[bytes] | None = None

    @property
    def log_path(self) -> Path:
        return self.workdir / "mosquitto.log"

    def config_lines(self) -> list[str]:
        """The broker's config; subclasses extend it."""
        lines = [
            f"listener {self.port} {self.host}",
            "persistence false",
            "set_tcp_nodelay true",  # as a deployment should: no Nagle delay per hop
        ]
        if os.geteuid() == 0:  # as root mosquitto drops to user "mosquitto": keep ours
            lines.append(f"user {pwd.getpwuid(os.geteuid()).pw_name}")
        return lines

    def _write_config(self) -> Path:
        lines = self.config_lines()
        if not any(line.startswith("allow_anonymous") for line in lines):
            lines.append("allow_anonymous true")
        lines += ["log_type error", "log_type warning", "log_type notice", "log_dest stderr"]
        path = self.workdir / "mosquitto.conf"
        path.write_text("\n".join(lines) + "\n")
        return path

    def start(self, timeout: float = 10.0) -> Broker:
        self.workdir.mkdir(parents=True, exist_ok=True)
        for _attempt in range(START_ATTEMPTS):
            if not self.port:
                self.port = free_port(self.host)
            config = self._write_config()
            with self.log_path.open("ab") as log:
                try:
                    self.process = subprocess.Popen(
                        ["mosquitto", "-c", str(config)],
                        stdin=subprocess.DEVNULL,
                        stdout=log,
                        stderr=log,
                        start_new_session=self.detach,
                        preexec_fn=die_with_parent if self.detach else None,
                    )
                except FileNotFoundError:
                    raise BrokerError("mosquitto is not installed (run `make apt`)") from None
            if self._wait_ready(timeout):
                return self
            self.process.wait(timeout=5)
            self.port = 0  # the port was taken in between: pick another
        raise BrokerError(f"mosquitto did not start: {self.log_text()[-2000:]}")

    def _wait_ready(self, timeout: float) -> bool:
        """True once it accepts a connection; False if it exited (port taken)."""
        assert self.process is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                return False
            try:
                with socket.create_connection((self.host, self.port), timeout=0.5):
                    return True
            except OSError:
                time.sleep(0.005)  # polling a port with a deadline, not synchronisation
        self.stop()
        raise BrokerError(f"mosquitto not accepting connections within {timeout} s")

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    def stop(self, timeout: float = 5.0) -> None:
        """SIGTERM, then SIGKILL if it does not exit in `timeout` seconds."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=timeout)

    def restart(self) -> None:
        """Stop and start on the same port: retained messages are gone (persistence false)."""
        self.stop()
        self.start()

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
