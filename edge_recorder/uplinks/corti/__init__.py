"""Corti asynchronous ambient workflow (interactions, recordings, transcripts, documents)."""
