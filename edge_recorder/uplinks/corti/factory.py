"""Uplinks for `uplink.service = "corti"`: the asynchronous workflow behind the engine's protocols.

Every recording goes up once closed (`live_enabled = False`): Corti's documented durable path is
the file upload, and a broken real-time stream cannot be resumed at a byte offset, so streaming
cannot stand in for an upload without breaking the engine's "service holds these bytes" rule.
`corti.live_stream` adds the `/streams` live copy beside the uploads (`tap.py`), for live
transcripts and facts during the visit.
"""

from __future__ import annotations

from edge_recorder.config.model import Config
from edge_recorder.support.credentials import read_secret
from edge_recorder.support.logs import get_logger
from edge_recorder.uplinks.auth import ClientCredentialsProvider, make_ssl_context
from edge_recorder.uplinks.base import SessionIdentity, UplinkState
from edge_recorder.uplinks.bundle import Uplinks
from edge_recorder.uplinks.corti.processing import CortiWorkflow
from edge_recorder.uplinks.corti.rest import CortiRest
from edge_recorder.uplinks.corti.tap import CortiTap
from edge_recorder.uplinks.corti.uploader import CortiUploader

log = get_logger(__name__)

SECRET_CREDENTIAL = "corti-client-secret"  # noqa: S105  (a credential name, not a secret)


def token_provider(config: Config) -> ClientCredentialsProvider:
    corti = config.corti
    secret_file = corti.client_secret_file
    return ClientCredentialsProvider(
        corti.token_url,
        corti.client_id,
        lambda: read_secret(secret_file, SECRET_CREDENTIAL),
        scope=corti.scope,
        refresh_margin_s=corti.refresh_margin_s,
        ca_file=corti.ca_file,
        timeout_s=config.uplink.connect_timeout_s,
    )


def rest_client(config: Config, tokens: ClientCredentialsProvider) -> CortiRest:
    corti = config.corti
    secure = corti.api_base.startswith("https://")
    return CortiRest(
        corti.api_base,
        corti.tenant,
        tokens,
        ssl_context=make_ssl_context(corti.ca_file) if secure else None,
        connect_timeout_s=config.uplink.connect_timeout_s,
        request_timeout_s=config.uplink.request_timeout_s,
    )


def corti_uplinks(config: Config, state: UplinkState) -> Uplinks:
    """Raises ValueError naming the key when the config cannot reach Corti."""
    corti = config.corti
    for key in ("tenant", "client_id"):
        if not getattr(corti, key):
            raise ValueError(f"corti.{key} must be set for uplink.service = 'corti'")
    codec = config.encoding.codec
    if codec not in ("pcm16", "flac"):
        raise ValueError("corti uploads need encoding.codec = pcm16 or flac")
    tokens = token_provider(config)
    rest = rest_client(config, tokens)
    uploader = CortiUploader(
        rest,
        state,
        corti,
        codec="flac" if codec == "flac" else "pcm16",
        sample_rate=config.audio.output_rate,
        channels=1,  # the pipeline mixes to mono before encoding
    )
    workflow = CortiWorkflow(rest, state, corti)
    locale = corti.primary_language
    tap = CortiTap(config, tokens, uploader, state) if corti.live_stream else None

    return Uplinks(
        service="corti",
        live=workflow,
        store_forward=uploader,
        session_at_start=True,  # the interaction exists while the visit happens
        identity=lambda cid: SessionIdentity.local(cid, locale),
        check_auth=tokens.token,
        live_enabled=False,
        holds_copy=True,
        closers=(tokens.aclose,),
        tap=tap,  # live mode: a real-time copy beside the uploads (delivery/tap.py)
    )
