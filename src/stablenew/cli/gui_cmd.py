"""`stablenew gui`: the desktop app."""

from __future__ import annotations

import os

import typer

from stablenew.cli.common import EXIT_TERMINATED, fail, on_stop_signals


def gui(
    ctx: typer.Context,
    backend: str | None = typer.Option(
        None, help="Attach to a running backend at this URL (the configured one otherwise)."
    ),
) -> None:
    """Open the desktop app (it runs the queue, or follows the process that already does)."""
    import tkinter as tk

    from stablenew.gui.prefs import Prefs
    from stablenew.gui.stopping import Terminator
    from stablenew.gui.theme import dpi_aware
    from stablenew.gui.window import MainWindow

    dpi_aware()  # before the first window, so Windows does not stretch it
    try:
        root = tk.Tk()
    except tk.TclError as exc:  # no display: say so, not a traceback
        fail(f"cannot open a window: {exc}")
    services = ctx.obj.services(backend_url=backend)
    window = MainWindow(
        services,
        Prefs(ctx.obj.home / "gui.json"),
        root,
        home=ctx.obj.home,
        discover=backend is None,  # a backend named on the command line is the user's choice
    )
    # The close button's way, or (the Tk loop too busy to get to it) stopped from a thread.
    stop = Terminator(window, leave=lambda: os._exit(EXIT_TERMINATED))
    restore = on_stop_signals(stop)
    unlisten = stop.listen()
    try:
        window.run()
    finally:
        unlisten()
        restore()
    if stop.signals:
        raise typer.Exit(EXIT_TERMINATED)
