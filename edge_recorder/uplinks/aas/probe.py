"""`edge-recorder check --probe` rows for AAS: token, live transport, REST host.

Side-effect free: it fetches a token, calls RetrieveConfiguration on the configured live
transport and sends the REST host one authenticated request it must refuse with the service's
own validation answer (`AasRestClient.probe`): a web server answering 404 is not the service.
It never creates a session or uploads audio, and prints no token.
"""

from __future__ import annotations

import asyncio
import time

from edge_recorder.config.model import Config
from edge_recorder.support.checks import CheckResult
from edge_recorder.uplinks.aas.factory import aas_uplinks
from edge_recorder.uplinks.aas.identity import aas_identity
from edge_recorder.uplinks.aas.rest import AasRestClient
from edge_recorder.uplinks.base import UplinkError
from edge_recorder.uplinks.probe import PROBE_CORRELATION_ID


async def probe_aas_async(config: Config) -> list[CheckResult]:
    aas = config.aas
    if not (aas.grpc_target or aas.rest_url or aas.ws_url):
        return [CheckResult("aas", "info", "not configured (aas.grpc_target/rest_url unset)")]
    try:
        uplinks = aas_uplinks(config)
        session = aas_identity(aas, PROBE_CORRELATION_ID)
    except ValueError as exc:
        return [CheckResult("aas", "fail", str(exc))]
    rows: list[CheckResult] = []
    try:
        started = time.monotonic()
        try:
            await uplinks.check_auth()
            rows.append(
                CheckResult(
                    "aas-token",
                    "ok",
                    f"{config.auth.mode} token obtained "
                    f"in {1000 * (time.monotonic() - started):.0f} ms",
                )
            )
        except UplinkError as err:
            return [*rows, CheckResult("aas-token", "fail", str(err))]
        transport = config.uplink.live_transport
        try:
            conf = await uplinks.live.retrieve_configuration(session)
            rows.append(
                CheckResult(
                    f"aas-{transport}",
                    "ok",
                    f"configuration: max {conf.max_recording_duration_s or '?'} s, "
                    f"chunk <= {conf.max_chunk_bytes or '?'} bytes, "
                    f"{len(conf.formats)} formats",
                )
            )
        except UplinkError as err:
            rows.append(CheckResult(f"aas-{transport}", "fail", str(err)))
        if aas.rest_url:
            rest = uplinks.store_forward
            assert isinstance(rest, AasRestClient)
            try:
                answer = await rest.probe()
                rows.append(
                    CheckResult("aas-rest", "ok", f"{aas.rest_url} is the service ({answer})")
                )
            except UplinkError as err:
                rows.append(CheckResult("aas-rest", "fail", str(err)))
    finally:
        await uplinks.aclose()
    return rows


def probe_aas(config: Config) -> list[CheckResult]:
    return asyncio.run(probe_aas_async(config))
