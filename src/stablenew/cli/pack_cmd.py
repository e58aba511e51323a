"""`stablenew pack show`: a pack parsed and expanded, nothing queued. What it shows is what
would be sent: the prompts after the global prompts are applied, printed literally."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from stablenew.app.config import intents_for
from stablenew.app.intents import Overrides, parse_stages
from stablenew.cli.common import images_option, json_option, stages_option
from stablenew.cli.output import out

pack_app = typer.Typer(help="Prompt packs.", no_args_is_help=True)


@pack_app.command("show")
def pack_show(
    ctx: typer.Context,
    pack: Path = typer.Argument(
        ..., metavar="PACK", help="NAME.txt, NAME.json or NAME (both files of a pack)."
    ),
    stages: str | None = stages_option(),
    images: int | None = images_option(),
    json_out: bool = json_option(),
) -> None:
    """Parse and expand a pack without queueing anything: each job's prompts as they would be
    sent, its variant, stage chain and seed, then every problem (file, row, token). Exit 1 when
    there is a problem: such a pack is refused by `run` and `queue add` (unless --unresolved
    drop|keep)."""
    out.json = json_out
    overrides = Overrides(
        stages=parse_stages(stages) if stages is not None else None, images=images
    )
    intents = intents_for(ctx.obj.home, ctx.obj.config())
    expansion, problems = intents.survey(pack, overrides)
    jobs: list[dict[str, Any]] = []
    for spec in expansion.specs:
        positive, negative = intents.sent_prompts(spec)
        jobs.append(
            {
                "row": spec.provenance.row,
                "variant": dict(spec.provenance.variant),
                "positive": positive,
                "negative": negative,
                "images": spec.images,
                "stages": spec.stages(),
                "seed": spec.seed,
                "spec": spec.model_dump(mode="json"),
            }
        )
    preview = expansion.preview()
    if out.json:
        document = {
            "name": preview["pack"],
            "rows": preview["rows"],
            "variants_per_row": preview["variants_per_row"],
            "images": preview["images"],
            "warnings": preview["warnings"],
            "problems": problems,
            "jobs": jobs,
        }
        out.document("pack", document)
        raise typer.Exit(1 if problems else 0)
    for warning in preview["warnings"]:
        out.warn(warning)
    out.line(
        (str(preview["pack"]), "bold"),
        f": {preview['rows']} row(s), variants per row {preview['variants_per_row']}, "
        f"{preview['jobs']} job(s), {preview['images']} image(s)",
    )
    for n, job in enumerate(jobs, start=1):
        variant = ", ".join(f"{k}={v}" for k, v in job["variant"].items())
        out.line(
            (f"job {n}", "bold"),
            f" (row {job['row']}{', ' + variant if variant else ''}): "
            f"{','.join(job['stages'])}, {job['images']} image(s), seed {job['seed']}",
        )
        out.line(("  positive: ", "green"), job["positive"])
        out.line(("  negative: ", "red"), job["negative"] or "-")
    for problem in problems:
        out.line(("problem: ", "red"), problem)
    if problems:
        out.note(f"{len(problems)} problem(s): `run` and `queue add` refuse this pack as it is")
        raise typer.Exit(1)
