"""`edge-recorder check --probe` rows for Corti: a token from the tenant realm, then the API.

Side-effect free: it fetches a token and lists the tenant's templates (`GET /templates/`); it
never creates an interaction or uploads audio, and prints no token. It also says whether each
configured `template_keys` entry exists, since an unknown key fails only after an encounter.
"""

from __future__ import annotations

import asyncio
import time

from edge_recorder.config.model import Config
from edge_recorder.support.checks import CheckResult
from edge_recorder.uplinks.base import UplinkError
from edge_recorder.uplinks.corti.factory import rest_client, token_provider


async def probe_corti_async(config: Config) -> list[CheckResult]:
    corti = config.corti
    if config.uplink.service != "corti" and not corti.tenant:
        return [CheckResult("corti", "info", "not configured (uplink.service is not corti)")]
    if not corti.tenant or not corti.client_id:
        return [CheckResult("corti", "fail", "corti.tenant and corti.client_id must be set")]
    tokens = token_provider(config)
    rest = rest_client(config, tokens)
    rows: list[CheckResult] = []
    try:
        started = time.monotonic()
        try:
            await tokens.token()
        except UplinkError as err:
            return [CheckResult("corti-token", "fail", str(err))]
        ms = 1000 * (time.monotonic() - started)
        rows.append(
            CheckResult("corti-token", "ok", f"token from {corti.token_url} in {ms:.0f} ms")
        )
        try:
            templates = await rest.templates()
        except UplinkError as err:
            return [*rows, CheckResult("corti-api", "fail", str(err))]
        keys = {str(t.get("key")) for t in templates}
        rows.append(CheckResult("corti-api", "ok", f"{corti.api_base}: {len(templates)} templates"))
        missing = [k for k in corti.template_keys if k not in keys]
        if missing:
            rows.append(
                CheckResult(
                    "corti-templates", "warn", "unknown template_keys: " + ", ".join(missing)
                )
            )
    finally:
        await rest.aclose()
        await tokens.aclose()
    return rows


def probe_corti(config: Config) -> list[CheckResult]:
    return asyncio.run(probe_corti_async(config))
