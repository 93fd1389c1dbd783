"""Uplinks for Dice STREAM: one client serves the live and the store-and-forward paths."""

from __future__ import annotations

from edge_recorder.config.model import Config
from edge_recorder.spool.crypto import load_key
from edge_recorder.support.credentials import read_secret
from edge_recorder.uplinks.auth import make_ssl_context
from edge_recorder.uplinks.base import SessionIdentity, UplinkState
from edge_recorder.uplinks.bundle import Uplinks
from edge_recorder.uplinks.dice.client import DiceClient
from edge_recorder.uplinks.dice.notes import NoteWriter
from edge_recorder.uplinks.dice.tokens import PasswordGrantTokens

PASSWORD_CREDENTIAL = "dice-password"  # noqa: S105 - a credential name, not a secret


def dice_uplinks(config: Config, state: UplinkState) -> Uplinks:
    """Raises ValueError naming the key when the config cannot drive Dice (no I/O here)."""
    dice = config.dice
    if config.encoding.codec != "pcm16":
        raise ValueError(
            f'uplink.service = "dice" takes PCM16 mono only: set encoding.codec = "pcm16" '
            f"(now {config.encoding.codec!r})"
        )
    if not dice.token_url:
        raise ValueError("dice.token_url is not set (the password-grant sign-in URL)")
    if not dice.username:
        raise ValueError("dice.username is not set")
    password_file = dice.password_file
    tokens = PasswordGrantTokens(
        dice.token_url,
        dice.username,
        lambda: read_secret(password_file, PASSWORD_CREDENTIAL),
        refresh_url=dice.refresh_url,
        refresh_margin_s=dice.refresh_margin_s,
        ca_file=dice.ca_file,
        timeout_s=config.uplink.connect_timeout_s,
    )
    notes = None
    if dice.save_notes:
        key_file = config.spool.key_file
        notes = NoteWriter(
            config.spool.dir / "notes",
            lambda: load_key(key_file, allow_create=False)[0],
            keep_days=dice.notes_keep_days,
        )
        notes.prune()  # at start-up too: a device that streams rarely still forgets old PHI
    client = DiceClient(
        dice,
        tokens,
        state,
        notes=notes,
        upload_sample_rate=config.audio.output_rate,
        ssl_context=make_ssl_context(dice.ca_file) if dice.url.startswith("wss://") else None,
        heartbeat_s=config.uplink.keepalive_s,
        connect_timeout_s=config.uplink.connect_timeout_s,
        request_timeout_s=config.uplink.request_timeout_s,
    )
    language = dice.language

    def identity(correlation_id: str) -> SessionIdentity:
        return SessionIdentity.local(correlation_id, language)

    return Uplinks(
        service="dice",
        live=client,
        store_forward=client,
        identity=identity,
        check_auth=tokens.token,
        live_enabled=True,
        holds_copy=False,  # the service stores nothing: the spool remains the record
        closers=(tokens.aclose,),
    )
