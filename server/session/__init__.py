"""Sessions: the store, its migrations, and the state derived from the event log."""
