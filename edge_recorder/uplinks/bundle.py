"""The bundle of uplinks one service gives the delivery engine, and an in-memory UplinkState.

The engine asks for an `Uplinks` once and uses `live` for the recording being captured and
`store_forward` for recordings closed offline or refused on resume. Each service's package
builds one (`edge_recorder/uplinks/<service>/factory.py`) behind the same `base` protocols, so
the engine never depends on a transport module and tests pass fakes (`uplinks.fakes`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from edge_recorder.uplinks.base import (
    LiveStreamer,
    LiveTap,
    SessionIdentity,
    StoreForwardUploader,
)

if TYPE_CHECKING:  # aiohttp and PyJWT load only with a service that uses them
    from edge_recorder.uplinks.auth import TokenProvider


@dataclass
class Uplinks:
    """What the engine needs from one service.

    - `identity(encounter_id)`: the session identity the clients are called with;
    - `live_enabled`: the service takes audio while it is being captured (else every
      recording goes through `store_forward` once closed);
    - `holds_copy`: the service stores the audio, so StartProcessing's counts can be checked
      against the spool (a service that keeps nothing cannot vouch for bytes);
    - `check_auth`: obtain a credential now (for `check --probe`);
    - `session_at_start`: create the service's session (`store_forward.create_session`) as
      soon as an encounter is recording and the service is reachable, not only when its first
      recording is uploaded (Corti: the interaction exists while the visit happens).
    """

    service: str
    live: LiveStreamer
    store_forward: StoreForwardUploader
    identity: Callable[[str], SessionIdentity]
    check_auth: Callable[[], Awaitable[object]]
    live_enabled: bool = True
    holds_copy: bool = True
    session_at_start: bool = False
    closers: Sequence[Callable[[], Awaitable[None]]] = field(default_factory=tuple)
    tokens: TokenProvider | None = None  # AAS only: the shared OAuth2 token provider
    tap: LiveTap | None = None  # a best-effort real-time copy beside the upload (Corti live)
    # The warning lead before the service's maximum recording length, when the service states
    # the maximum but not the lead (AAS: `aas.warn_before_s`).
    warn_before_s: float = 300.0

    async def aclose(self) -> None:
        await self.live.aclose()
        await self.store_forward.aclose()
        for close in self.closers:
            await close()
        if self.tokens is not None:
            await self.tokens.aclose()


class MemoryState:
    """An `UplinkState` that forgets on exit: for probes (which must not touch the daemon's
    delivery.json) and tests."""

    def __init__(self) -> None:
        self.values: dict[str, str] = {}

    def get(self, key: str) -> str | None:
        return self.values.get(key)

    def put(self, key: str, value: str) -> None:
        self.values[key] = value

    def drop(self, prefix: str) -> None:
        self.values = {k: v for k, v in self.values.items() if not k.startswith(prefix)}
