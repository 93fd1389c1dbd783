"""The generic `check --probe` of a service: a credential, then the engine's online check.

Side-effect free (the service's `retrieve_configuration`), with a throw-away UplinkState so
probing never touches the daemon's delivery.json. Services with more to say (AAS, Corti) have
a probe of their own in their package; the registry names each service's probe.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from edge_recorder.config.model import Config
from edge_recorder.support.checks import CheckResult, Probe
from edge_recorder.uplinks.base import UplinkError, UplinkState
from edge_recorder.uplinks.bundle import MemoryState, Uplinks

PROBE_CORRELATION_ID = "edge-recorder-check"

UplinksBuilder = Callable[[Config, UplinkState], Uplinks]


async def probe_service_async(config: Config, build: UplinksBuilder) -> list[CheckResult]:
    """Obtain a credential, then the side-effect-free online check the delivery engine itself
    uses: the probe of a service without a more detailed one of its own (Dice, AWS)."""
    service = config.uplink.service
    try:
        uplinks = build(config, MemoryState())
    except (ValueError, OSError) as exc:
        return [CheckResult(service, "fail", str(exc))]
    rows: list[CheckResult] = []
    try:
        started = time.monotonic()
        try:
            await uplinks.check_auth()
        except UplinkError as err:
            return [CheckResult(f"{service}-credentials", "fail", str(err))]
        ms = 1000 * (time.monotonic() - started)
        rows.append(CheckResult(f"{service}-credentials", "ok", f"obtained in {ms:.0f} ms"))
        try:
            conf = await uplinks.live.retrieve_configuration(uplinks.identity(PROBE_CORRELATION_ID))
            limit = conf.max_recording_duration_s
            rows.append(
                CheckResult(f"{service}-endpoint", "ok", f"reachable; limit {limit or '?'} s")
            )
        except UplinkError as err:
            rows.append(CheckResult(f"{service}-endpoint", "fail", str(err)))
    finally:
        await uplinks.aclose()
    return rows


def generic_probe(build: UplinksBuilder) -> Probe:
    """The `check --probe` function of a service built by `build`."""

    def probe(config: Config) -> list[CheckResult]:
        return asyncio.run(probe_service_async(config, build))

    return probe
