"""`[dice]`: the Dice STREAM endpoint and the note the device asks for.

[doc] = the STREAM page (seed `scribe-stream-websocket.txt`) or its sibling REST API;
[inferred] = not published, to confirm with Dice before production use.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import ConfigDict, Field

from edge_recorder.config.base import HttpUrl, PositiveSeconds, Seconds, Section, WsUrl

OutputObject = Literal["transcript", "note"]
GenMode = Literal["fast", "medium", "best"]


class DiceConfig(Section):
    """Dice endpoints, sign-in user and stream settings (the password lives in a file)."""

    model_config = ConfigDict(title="dice")

    url: WsUrl = Field(
        "wss://api.dice.health/v1/scribe/server",
        description="STREAM WebSocket URL [doc] (the server API; TLS required outside loopback).",
    )
    token_url: HttpUrl | None = Field(
        None,
        description="OAuth2 password-grant sign-in URL (form-encoded). Not published with the "
        "STREAM docs [inferred]: ask Dice for it.",
    )
    refresh_url: HttpUrl | None = Field(
        None,
        description="Where the refresh token is exchanged (grant_type=refresh_token); "
        "default: token_url [inferred].",
    )
    username: str | None = Field(None, description="Server API user for the password grant.")
    password_file: Path | None = Field(
        None, description="File with the password; default: systemd credential 'dice-password'."
    )
    ca_file: Path | None = Field(None, description="CA bundle for the service and sign-in.")
    refresh_margin_s: Seconds = Field(
        60.0, description="Refresh the access token this long before it expires."
    )
    output_objects: list[OutputObject] = Field(
        default_factory=lambda: list[OutputObject](["transcript", "note"]),
        min_length=1,
        description="What the service sends back [doc]: transcript items, the note, or both.",
    )
    language: Literal["en-US", "fr-CA"] = Field("en-US", description="Spoken language [doc].")
    note_template: Literal["soap", "consult"] = Field("soap", description="Note template [doc].")
    style: Literal["paragraph", "bullet", "auto"] = Field(
        "paragraph", description="Note style [doc]."
    )
    transcribe_gen_mode: GenMode = Field("fast", description="Transcription mode [doc].")
    note_gen_mode: GenMode = Field("fast", description="Note generation mode [doc].")
    speaker: Literal["provider", "patient", "unknown"] = Field(
        "unknown",
        description="Speaker of the device's one audio track [doc enum]; an ambient room mic "
        "hears both, hence 'unknown'.",
    )
    chunk_ms: int = Field(
        250, ge=20, le=1000, description="Audio per audio_chunk message (the service takes <= 1 s)."
    )
    note_timeout_s: PositiveSeconds = Field(
        60.0, description="How long to wait for the note after sending stop."
    )
    stream_limit_s: PositiveSeconds = Field(
        3600.0, description="Audio per stream the service accepts [doc: 1 hour]."
    )
    limit_warning_s: Seconds = Field(
        60.0, description="Warning lead before the stream limit [doc: countdown from 60 s]."
    )
    save_notes: bool = Field(
        True,
        description="Keep each stream's note and transcript, encrypted with the spool key, "
        "under <spool.dir>/notes/ (mode 0600).",
    )
    notes_keep_days: Seconds = Field(
        7.0,
        description="Sealed notes older than this many days are deleted (PHI is not kept "
        "longer than needed to hand it over; 0 keeps them until deleted by hand).",
    )
