"""`stablenew pack show`, `stablenew config show`, `stablenew doctor`: look before you run."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.markup import escape
from rich.table import Table

from stablenew.app.config import intents_for, shown
from stablenew.app.doctor import diagnose
from stablenew.app.intents import Overrides, parse_stages
from stablenew.cli.common import console

pack_app = typer.Typer(help="Prompt packs.", no_args_is_help=True)
config_app = typer.Typer(help="Configuration.", no_args_is_help=True)


@pack_app.command("show")
def pack_show(
    ctx: typer.Context,
    pack: Path = typer.Argument(..., help="NAME.txt, NAME.json or NAME."),
    stages: str | None = typer.Option(None),
    images: int | None = typer.Option(None, min=1),
    json_out: bool = typer.Option(False, "--json"),
) -> None:
    """Parse and expand a pack without queueing: what this shows is what would be sent."""
    overrides = Overrides(
        stages=parse_stages(stages) if stages is not None else None, images=images
    )
    intents = intents_for(ctx.obj.home, ctx.obj.config())
    expansion = intents.pack(pack, overrides)
    specs = expansion.specs
    jobs = []
    for spec in specs:
        positive, negative = intents.sent_prompts(spec)
        jobs.append(
            {
                "row": spec.provenance.row,
                "variant": spec.provenance.variant,
                "positive": positive,
                "negative": negative,
                "images": spec.images,
                "stages": spec.stages(),
                "seed": spec.seed,
            }
        )
    if json_out:
        print(json.dumps({**expansion.preview(), "job_list": jobs}, indent=2))
        return
    preview = expansion.preview()
    console.print(
        f"[bold]{escape(preview['pack'])}[/]: {preview['rows']} row(s), variants per row "
        f"{preview['variants_per_row']}, {preview['jobs']} job(s), {preview['images']} image(s)"
    )
    table = Table()
    for column in ("row", "variant", "positive", "negative", "stages"):
        table.add_column(column, overflow="fold")
    for job in jobs:
        variant = ", ".join(f"{k}={v}" for k, v in job["variant"].items())
        table.add_row(
            str(job["row"]),
            escape(variant),
            escape(job["positive"]),
            escape(job["negative"]),
            ",".join(job["stages"]),
        )
    console.print(table)


@config_app.command("show")
def config_show(ctx: typer.Context) -> None:
    """The effective configuration (defaults plus <home>/config.toml)."""
    config = ctx.obj.config()
    print(json.dumps({"home": str(ctx.obj.home), **shown(config)}, indent=2))


def doctor(
    ctx: typer.Context,
    backend: str | None = typer.Option(None, help="Check a running backend at this URL."),
    timeout: float = typer.Option(10.0, help="Seconds an attached backend has to answer."),
) -> None:
    """Check the configuration, the job database, the disks and the backend, each with a clear
    verdict. On a home another process owns, it only reads: it never starts or stops anything."""
    ok = True
    for check in diagnose(ctx.obj.home, ctx.obj.config(), backend, timeout):
        ok &= check.ok
        mark = "[green]ok[/]  " if check.ok else "[red]FAIL[/]"
        console.print(f"{mark} {check.name}: {escape(check.detail)}", soft_wrap=True)
    raise typer.Exit(0 if ok else 1)
