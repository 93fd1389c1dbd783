"""`[dice]`: the Dice STREAM endpoint and the note the device asks for."""

from __future__ import annotations

from edge_recorder.config_base import Section


class DiceConfig(Section):
    """Dice endpoints, sign-in user and stream settings (the password lives in a file)."""
