"""The `stablenew` command line: every command goes through the controllers (never around the
queue), prints errors as one readable line, and exits non-zero when something did not work."""

from __future__ import annotations

from pathlib import Path

import typer

from stablenew.cli import gui_cmd, info_cmd, queue_cmd, run_cmd, sim_cmd
from stablenew.cli.common import Context, exit_code, fail
from stablenew.errors import StableNewError

app = typer.Typer(
    name="stablenew",
    help="A local orchestrator for Stable Diffusion over the AUTOMATIC1111 WebUI API.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _root(
    ctx: typer.Context,
    home: Path | None = typer.Option(
        None, envvar="STABLENEW_HOME", help="Folder for config, database, logs and outputs."
    ),
) -> None:
    """StableNew: durable jobs, one image at a time, a backend kept alive."""
    ctx.obj = Context(home)


app.command("run")(run_cmd.run)
app.command("worker")(queue_cmd.worker)
app.command("history")(queue_cmd.history)
app.command("doctor")(info_cmd.doctor)
app.command("webui-sim")(sim_cmd.webui_sim)
app.command("gui")(gui_cmd.gui)
app.add_typer(queue_cmd.queue_app, name="queue")
app.add_typer(info_cmd.pack_app, name="pack")
app.add_typer(info_cmd.config_app, name="config")


def main() -> None:
    try:
        app()
    except StableNewError as exc:  # one readable line, the exit code of its kind, no traceback
        try:
            fail(str(exc), exit_code(exc))
        except typer.Exit as done:
            raise SystemExit(done.exit_code) from None
