"""A stand-in daemon for the signal tests: the service.py pieces wired the way `run` wires them.

Started as a real process with NOTIFY_SOCKET and WATCHDOG_USEC set, like systemd starts the
unit. SIGUSR1 makes its capture thread hang (a stuck driver read). Prints one line per reload.
"""

from __future__ import annotations

import asyncio
import signal
import sys
import threading

from edge_recorder.app.service import ServiceNotifier, WatchdogSupervisor, install_signal_handlers
from edge_recorder.status import DeviceStatus
from edge_recorder.support.logs import setup_logging


async def main() -> int:
    setup_logging("INFO")
    loop = asyncio.get_running_loop()
    notifier = ServiceNotifier()
    supervisor = WatchdogSupervisor.from_environment(notifier)
    capture = supervisor.register("capture", 0.3)
    hang = threading.Event()
    forever = threading.Event()

    def capture_loop() -> None:
        while True:
            if hang.is_set():
                forever.wait()
            capture.beat()
            forever.wait(0.005)

    threading.Thread(target=capture_loop, name="capture", daemon=True).start()
    loop.add_signal_handler(signal.SIGUSR1, hang.set)

    stopped = asyncio.Event()

    async def on_stop() -> None:
        notifier.status("recording closed (shutdown); spool flushed")
        stopped.set()

    def on_reload() -> None:
        print("reloaded", flush=True)

    install_signal_handlers(loop, on_stop, on_reload, notifier)
    watchdog = asyncio.create_task(supervisor.run())
    notifier.ready(DeviceStatus())
    await stopped.wait()
    watchdog.cancel()
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
