"""`[corti]`: where the Corti asynchronous workflow lives and what to ask of it."""

from __future__ import annotations

from edge_recorder.config_base import Section


class CortiConfig(Section):
    """Corti tenant, endpoints and workflow options (secrets live in files/credentials)."""
