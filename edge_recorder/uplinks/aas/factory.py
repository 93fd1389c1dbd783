"""Uplinks for `uplink.service = "aas"`: gRPC (or WebSocket) live, REST store-and-forward."""

from __future__ import annotations

from edge_recorder.config.model import Config
from edge_recorder.uplinks.aas.grpc_stream import AasGrpcClient
from edge_recorder.uplinks.aas.identity import aas_identity
from edge_recorder.uplinks.aas.rest import AasRestClient
from edge_recorder.uplinks.aas.websocket import AasWebSocketClient
from edge_recorder.uplinks.auth import TokenProvider, token_provider_from_config
from edge_recorder.uplinks.base import LiveStreamer, SessionIdentity, UplinkState
from edge_recorder.uplinks.bundle import Uplinks
from edge_recorder.uplinks.delegated import DelegatedTokenProvider


def live_streamer(config: Config, tokens: TokenProvider) -> LiveStreamer:
    """The live transport `uplink.live_transport` names (gRPC by default), with the site's
    delegated token when it has one."""
    if config.auth.delegated_token_file is not None:
        tokens = DelegatedTokenProvider(config.auth.delegated_token_file)
    if config.uplink.live_transport == "websocket":
        return AasWebSocketClient.from_config(config, tokens)
    return AasGrpcClient.from_config(config, tokens)


def aas_uplinks(config: Config, state: UplinkState | None = None) -> Uplinks:
    """Token provider, live streamer and REST uploader for `config` (no I/O until used).

    Raises ValueError with the offending key when the config lacks what a transport needs.
    """
    timeout = config.uplink.connect_timeout_s
    tokens = token_provider_from_config(config.auth, timeout_s=timeout)
    partner: TokenProvider | None = None
    if config.auth.partner_scope:
        scoped = config.auth.model_copy(update={"scope": config.auth.partner_scope})
        partner = token_provider_from_config(scoped, timeout_s=timeout)

    def identity(correlation_id: str) -> SessionIdentity:
        return aas_identity(config.aas, correlation_id)

    return Uplinks(
        service="aas",
        live=live_streamer(config, tokens),
        store_forward=AasRestClient.from_config(config, tokens, partner),
        identity=identity,
        check_auth=tokens.token,
        tokens=tokens,
        closers=(partner.aclose,) if partner is not None else (),
        warn_before_s=config.aas.warn_before_s,
    )
