"""Settings of the Dice STREAM emulator (one dataclass; tests override any field)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

DEV_USERNAME = "dice-dev-server"
DEV_PASSWORD = "dice-dev-password"  # noqa: S105 - a loopback development account


@dataclass(frozen=True)
class DiceEmulatorSettings:
    data_dir: Path
    host: str = "127.0.0.1"
    http_port: int = 0
    username: str = DEV_USERNAME
    password: str = DEV_PASSWORD
    token_lifetime_s: float = 3600.0  # [doc] user tokens last 1 hour
    stream_limit_s: float = 3600.0  # [doc] 1 hour per stream (audio time here [inferred])
    countdown_s: float = 60.0  # [doc] duration_limit countdown starts at 60 s
    max_chunk_s: float = 1.0  # [doc] audio_chunk "Max duration 1s"
    transcript_item_s: float = 2.0  # audio per emulated transcript item
