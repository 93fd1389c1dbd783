"""A child process running the real FleetReporter with the fake daemon, until killed.

Usage: python -m tests.integration.fleet.reporter_child CONFIG.json
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from edge_recorder.config.model import Config
from edge_recorder.fleet.reporter import FleetReporter
from tests.integration.fleet.fakes import FakeDaemon, FakeSystem


async def main(config: Config) -> None:
    daemon = FakeDaemon()
    reporter = FleetReporter(config, daemon.status, daemon, system=FakeSystem(), reconnect_min_s=1)
    await reporter.start()
    print("started", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(Config.model_validate_json(Path(sys.argv[1]).read_text())))
