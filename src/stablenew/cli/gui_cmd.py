"""`stablenew gui`: the desktop app."""

from __future__ import annotations

import typer


def gui(
    ctx: typer.Context,
    backend: str | None = typer.Option(None, help="Attach to a running backend at this URL."),
) -> None:
    """Open the desktop app."""
    from stablenew.gui.prefs import Prefs
    from stablenew.gui.window import MainWindow

    services = ctx.obj.services(backend_url=backend)
    MainWindow(services, Prefs(ctx.obj.home / "gui.json")).run()
