"""Emulator of the aws service (see edge_recorder/uplinks/aws)."""
