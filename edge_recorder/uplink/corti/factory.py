"""Uplinks for the corti service (placeholder until the client lands)."""

from __future__ import annotations

from edge_recorder.config import Config
from edge_recorder.uplink.base import UplinkState
from edge_recorder.uplink.factory import Uplinks


def corti_uplinks(config: Config, state: UplinkState) -> Uplinks:
    raise ValueError('uplink.service = "corti" is not available in this build')
