"""The encrypted, crash-safe on-disk spool: the single source of truth for recorded audio."""
