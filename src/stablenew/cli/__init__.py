"""The `stablenew` command line: every command goes through the controllers (never around the
queue), prints errors as one readable line (or a JSON error under `--json`), and exits non-zero
when something did not work."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

import stablenew
from stablenew.cli import (
    backend_cmd,
    config_cmd,
    doctor_cmd,
    gui_cmd,
    import_cmd,
    listing,
    pack_cmd,
    queue_cmd,
    run_cmd,
    serve_cmd,
    sim_cmd,
    worker_cmd,
)
from stablenew.cli.common import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_TERMINATED,
    Context,
    StoppedWhileStarting,
    exit_code,
)
from stablenew.cli.output import out
from stablenew.errors import StableNewError

app = typer.Typer(
    name="stablenew",
    help="A local orchestrator for Stable Diffusion over the AUTOMATIC1111 WebUI API.",
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
    # Plain help: rich's panels show flags as `<bool>` and wrap at 80 columns in a pipe.
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        out.line(f"stablenew {stablenew.__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    ctx: typer.Context,
    home: Path | None = typer.Option(
        None,
        envvar="STABLENEW_HOME",
        metavar="DIR",
        help="Folder for config, database, logs and outputs (default: the user data folder).",
    ),
    version: bool = typer.Option(
        False,
        "--version",
        callback=_version,
        is_eager=True,
        help="Print the version and exit.",
    ),
) -> None:
    """StableNew: durable jobs, one image at a time, a backend kept alive."""
    ctx.obj = Context(home)


app.command("run")(run_cmd.run)
app.command("worker")(worker_cmd.worker)
app.command("serve")(serve_cmd.serve)
app.command("history")(listing.history)
app.command("doctor")(doctor_cmd.doctor)
app.command("webui-sim")(sim_cmd.webui_sim)
app.command("gui")(gui_cmd.gui)
app.command("import")(import_cmd.import_pngs)
app.add_typer(queue_cmd.queue_app, name="queue")
app.add_typer(backend_cmd.backend_app, name="backend")
app.add_typer(pack_cmd.pack_app, name="pack")
app.add_typer(config_cmd.config_app, name="config")


def main() -> None:
    # `--json` anywhere asks for JSON errors, also when the command never got to read it.
    wants_json = "--json" in sys.argv[1:]
    try:
        code = app(standalone_mode=False)
    except StableNewError as exc:  # one readable line, the exit code of its kind, no traceback
        code = exit_code(exc)
        out.json = out.json or wants_json
        out.error(str(exc), code, type(exc).__name__)
    except typer.TyperException as exc:  # a usage error: unknown option, bad value, ...
        code = exc.exit_code
        show = getattr(exc, "show", None)
        if out.json or wants_json:
            out.json = True
            out.error(exc.format_message(), code, type(exc).__name__)
        elif show is not None:
            show()  # click's own words: the usage line, a hint, the error
        else:
            out.error(exc.format_message(), code, type(exc).__name__)
    except (KeyboardInterrupt, typer.Abort):
        code = EXIT_INTERRUPTED
    except StoppedWhileStarting as exc:
        code = EXIT_TERMINATED
        out.note(f"stopped ({exc}) while the backend was starting")
    except OSError as exc:  # the disk or the file system said no: say what and where
        code = EXIT_FAILED
        out.json = out.json or wants_json
        out.error(f"{exc.strerror or exc}: {exc.filename or ''}".rstrip(": "), code, "OSError")
    raise SystemExit(code if isinstance(code, int) else 0)
