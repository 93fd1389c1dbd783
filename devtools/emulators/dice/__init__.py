"""Emulator of the dice service (see edge_recorder/uplinks/dice)."""
