"""The brain: the agent loop. Knows models and tool specs, never Docker, keyring or SQLite."""
