"""Uplinks for the dice service (placeholder until the client lands)."""

from __future__ import annotations

from edge_recorder.config import Config
from edge_recorder.uplink.base import UplinkState
from edge_recorder.uplink.factory import Uplinks


def dice_uplinks(config: Config, state: UplinkState) -> Uplinks:
    raise ValueError('uplink.service = "dice" is not available in this build')
