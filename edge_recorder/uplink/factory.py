"""Build the device's AAS uplinks from config: one token provider shared by all transports.

The delivery engine asks for `AasUplinks` once and uses `live` (gRPC or WebSocket, per
`uplink.live_transport`) for the recording being captured and `store_forward` (REST) for
recordings closed offline or refused on resume. Typed as the `base` protocols, so the engine
never depends on a transport module and tests can pass fakes.
"""

from __future__ import annotations

from dataclasses import dataclass

from edge_recorder.config import Config
from edge_recorder.uplink.auth import TokenProvider, token_provider_from_config
from edge_recorder.uplink.base import LiveStreamer, StoreForwardUploader


@dataclass
class AasUplinks:
    tokens: TokenProvider
    live: LiveStreamer
    store_forward: StoreForwardUploader

    async def aclose(self) -> None:
        await self.live.aclose()
        await self.store_forward.aclose()
        await self.tokens.aclose()


def live_streamer(config: Config, tokens: TokenProvider) -> LiveStreamer:
    """The live transport `uplink.live_transport` names (gRPC by default)."""
    if config.uplink.live_transport == "websocket":
        from edge_recorder.uplink.aas_ws import AasWebSocketClient

        return AasWebSocketClient.from_config(config, tokens)
    from edge_recorder.uplink.aas_grpc import AasGrpcClient

    return AasGrpcClient.from_config(config, tokens)


def aas_uplinks(config: Config) -> AasUplinks:
    """Token provider, live streamer and REST uploader for `config` (no I/O until used).

    Raises ValueError with the offending key when the config lacks what a transport needs.
    """
    from edge_recorder.uplink.aas_rest import AasRestClient

    tokens = token_provider_from_config(config.auth, timeout_s=config.uplink.connect_timeout_s)
    return AasUplinks(
        tokens=tokens,
        live=live_streamer(config, tokens),
        store_forward=AasRestClient.from_config(config, tokens),
    )
