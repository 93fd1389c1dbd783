"""AWS medical scribe streaming: Connect Health listening sessions and HealthScribe."""
