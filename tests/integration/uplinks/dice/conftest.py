"""Dice client ↔ the real Dice emulator on 127.0.0.1."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from edge_recorder.config.services.dice import DiceConfig
from edge_recorder.uplinks.base import SessionIdentity
from edge_recorder.uplinks.bundle import MemoryState
from edge_recorder.uplinks.dice.client import DiceClient
from edge_recorder.uplinks.dice.notes import NoteWriter
from edge_recorder.uplinks.dice.tokens import PasswordGrantTokens
from tests.support.dice_emulator import DiceEmulatorHandle, MakeDiceEmulator
from tests.support.dice_emulator import dice_emulator as dice_emulator  # fixtures by name
from tests.support.dice_emulator import make_dice_emulator as make_dice_emulator

RATE = 16000
SECOND = RATE * 2


def speechlike(seconds: float, seed: int = 1) -> bytes:
    """Deterministic PCM16 noise: every byte position differs, so misplaced bytes show."""
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(int(RATE * seconds)) * 3000).astype("<i2").tobytes()


class Rig:
    def __init__(self, emu: DiceEmulatorHandle, tmp: Path) -> None:
        self.emu = emu
        self.tmp = tmp
        self.state = MemoryState()
        self.key = secrets.token_bytes(32)
        self.notes_dir = tmp / "notes"
        self.clients: list[tuple[DiceClient, PasswordGrantTokens]] = []

    def client(self, **overrides: Any) -> tuple[DiceClient, PasswordGrantTokens]:
        password = self.tmp / "dice-password"
        password.write_text(self.emu.password + "\n")
        fields: dict[str, Any] = {
            "url": self.emu.ws_url,
            "token_url": self.emu.token_url,
            "username": self.emu.username,
            "password_file": password,
        }
        fields.update(overrides)
        config = DiceConfig(**fields)
        tokens = PasswordGrantTokens(
            str(config.token_url),
            str(config.username),
            lambda: password.read_text().strip(),
            refresh_url=config.refresh_url,
            timeout_s=5.0,
        )
        client = DiceClient(
            config,
            tokens,
            self.state,
            notes=NoteWriter(self.notes_dir, lambda: self.key),
            request_timeout_s=5.0,
            connect_timeout_s=2.0,
        )
        self.clients.append((client, tokens))
        return client, tokens


@pytest.fixture
async def rig(
    make_dice_emulator: MakeDiceEmulator,
    tmp_path: Path,
) -> AsyncIterator[Rig]:
    made = Rig(await make_dice_emulator(), tmp_path)
    yield made
    for client, tokens in made.clients:
        await client.aclose()
        await tokens.aclose()


@pytest.fixture
def session() -> SessionIdentity:
    return SessionIdentity.local("enc-1")
