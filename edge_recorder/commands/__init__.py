"""Subcommands of `edge-recorder`, one module each (see `edge_recorder.cli`)."""
