"""Request bodies the emulators' JSON endpoints accept (inspection API and service APIs)."""

from __future__ import annotations

from typing import Any

from aiohttp import web


async def json_object(request: web.Request) -> dict[str, Any] | None:
    """The body if it is a JSON object; None for anything else (the caller answers 400)."""
    try:
        body = await request.json()
    except ValueError:  # not JSON, or not UTF-8
        return None
    return body if isinstance(body, dict) else None
