"""The Tk desktop app. It consumes AppState and calls controller methods, nothing else; every
update reaches Tk through the UiDispatcher, and all disk and network work runs off the Tk thread."""
