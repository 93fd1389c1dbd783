"""Dice real-time STREAM WebSocket scribe."""
