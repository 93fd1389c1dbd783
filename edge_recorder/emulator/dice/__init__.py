"""Emulator of the dice service (see edge_recorder/uplink/dice)."""
