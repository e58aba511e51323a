"""Controllers and AppState: the one door for the GUI and the CLI."""
