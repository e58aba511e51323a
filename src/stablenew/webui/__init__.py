"""Talking to the backend: the typed client, the process manager and the one recovery layer."""
