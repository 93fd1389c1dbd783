"""Emulator of the corti service (see edge_recorder/uplinks/corti)."""
