"""`stablenew backend list`: the backends of the pool, their state, loaded model and job."""

from __future__ import annotations

import dataclasses

import typer

from stablenew.cli.common import json_option
from stablenew.cli.output import out

backend_app = typer.Typer(
    help="The backends StableNew drives (one, or a pool).",
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},
    rich_markup_mode=None,
)


@backend_app.command("list")
def list_backends(ctx: typer.Context, json_out: bool = json_option()) -> None:
    """Every backend: name, labels, state, URL, the model it has loaded and the job it runs.
    On a home another process owns, it asks that owner's backends (read-only)."""
    out.json = json_out
    services = ctx.obj.services()
    try:
        statuses = services.backend_statuses()
    finally:
        services.close()
    if out.json:
        out.document("backends", [dataclasses.asdict(s) for s in statuses])
        return
    rows = [
        [
            s.name,
            ",".join(s.labels) or "-",
            s.state.value + (f" (set aside: {s.held})" if s.held else ""),
            s.url or "-",
            s.loaded_model or "-",
            s.current_job[:8] if s.current_job else "-",
        ]
        for s in statuses
    ]
    out.table(["backend", "labels", "state", "url", "loaded model", "job"], rows)
