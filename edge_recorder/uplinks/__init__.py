"""Clients that deliver audio to a service (one module per transport)."""
