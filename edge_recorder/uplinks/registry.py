"""Build the device's uplinks for the configured service: one bundle the engine drives.

The delivery engine asks for `Uplinks` once and uses `live` for the recording being captured
and `store_forward` for recordings closed offline or refused on resume. For AAS those are gRPC
(or WebSocket) and REST; every other service (`uplink.service`) supplies its own pair behind the
same `base` protocols from its package (`edge_recorder/uplinks/<service>/factory.py`), so the
engine never depends on a transport module and tests can pass fakes.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from edge_recorder.config.model import Config
from edge_recorder.uplinks.auth import TokenProvider, token_provider_from_config
from edge_recorder.uplinks.base import (
    LiveStreamer,
    LiveTap,
    SessionIdentity,
    StoreForwardUploader,
    UplinkState,
)


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

    async def aclose(self) -> None:
        await self.live.aclose()
        await self.store_forward.aclose()
        for close in self.closers:
            await close()
        if self.tokens is not None:
            await self.tokens.aclose()


AasUplinks = Uplinks  # the AAS bundle is an `Uplinks` like any other


def live_streamer(config: Config, tokens: TokenProvider) -> LiveStreamer:
    """The live transport `uplink.live_transport` names (gRPC by default)."""
    if config.uplink.live_transport == "websocket":
        from edge_recorder.uplinks.aas.websocket import AasWebSocketClient

        return AasWebSocketClient.from_config(config, tokens)
    from edge_recorder.uplinks.aas.grpc_stream import AasGrpcClient

    return AasGrpcClient.from_config(config, tokens)


def aas_uplinks(config: Config) -> Uplinks:
    """Token provider, live streamer and REST uploader for `config` (no I/O until used).

    Raises ValueError with the offending key when the config lacks what a transport needs.
    """
    from edge_recorder.uplinks.aas.rest import AasRestClient

    tokens = token_provider_from_config(config.auth, timeout_s=config.uplink.connect_timeout_s)

    def identity(correlation_id: str) -> SessionIdentity:
        return SessionIdentity.from_config(config.aas, correlation_id)

    return Uplinks(
        service="aas",
        live=live_streamer(config, tokens),
        store_forward=AasRestClient.from_config(config, tokens),
        identity=identity,
        check_auth=tokens.token,
        tokens=tokens,
    )


def build_uplinks(config: Config, state: UplinkState) -> Uplinks:
    """The uplinks of `uplink.service` (no I/O until used); ValueError names a missing key."""
    service = config.uplink.service
    if service == "corti":
        from edge_recorder.uplinks.corti.factory import corti_uplinks

        return corti_uplinks(config, state)
    if service == "dice":
        from edge_recorder.uplinks.dice.factory import dice_uplinks

        return dice_uplinks(config, state)
    if service in ("aws-connect-health", "aws-healthscribe"):
        from edge_recorder.uplinks.aws.factory import aws_uplinks

        return aws_uplinks(config, state)
    return aas_uplinks(config)
