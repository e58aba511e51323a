"""`stablenew gui`: the desktop app."""

from __future__ import annotations

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
    stopped: list[int] = []

    def stop(signum: int) -> None:
        # A signal handler may run between any two bytecodes of the Tk thread: it only queues
        # the close (the same as the window's close button) for the Tk loop to run.
        stopped.append(signum)
        window.ui.post(window.close)

    restore = on_stop_signals(stop)
    try:
        window.run()
    finally:
        restore()
    if stopped:
        raise typer.Exit(EXIT_TERMINATED)
