"""`[aws]`: AWS medical scribe streaming (Connect Health / HealthScribe) settings."""

from __future__ import annotations

from edge_recorder.config_base import Section


class AwsScribeConfig(Section):
    """Region, endpoint and session headers (credentials come from the standard AWS sources)."""
