"""Far-field evaluation helpers (devtools/farfield)."""
