"""`stablenew import PNG...`: queue again the jobs that made these images."""

from __future__ import annotations

from pathlib import Path

import typer

from stablenew.cli.common import json_option, priority_option
from stablenew.cli.output import out


def import_pngs(
    ctx: typer.Context,
    files: list[Path] = typer.Argument(
        ..., metavar="PNG...", help="PNGs made by StableNew, A1111, Forge or SD.Next."
    ),
    dry_run: bool = typer.Option(
        False, "--dry-run", help="Print the job specs instead of queueing them."
    ),
    new_seed: bool = typer.Option(
        False, "--new-seed", help="Re-roll the seed (-1) instead of keeping the image's."
    ),
    priority: int = priority_option(),
    json_out: bool = json_option(),
) -> None:
    """Rebuild the job behind each PNG and queue it: exactly from StableNew's own `stablenew`
    chunk, or from A1111's infotext (prompt, negative, steps, sampler, schedule, CFG, seed, size,
    model, hires fix, denoising, clip skip; unparsed keys are reported). Every PNG is read
    before anything is queued."""
    out.json = json_out
    services = ctx.obj.services()
    try:
        imported = [services.intents.png(path, reroll_seed=new_seed) for path in files]
        for job in imported:
            for warning in job.warnings:
                out.warn(warning)
        if dry_run:
            specs = [job.spec.model_dump(mode="json") for job in imported]
            if out.json:
                out.document("specs", specs)
            else:
                for job in imported:
                    out.line(f"{job.file} ({job.source}):")
                    out.line(job.spec.model_dump_json(indent=2, exclude_defaults=True))
            return
        ids = services.jobs.submit_many([job.spec for job in imported], priority, source="cli")
    finally:
        services.close()
    if out.json:
        out.document("ids", ids)
        return
    for job, job_id in zip(imported, ids, strict=True):
        out.line(f"queued {job_id} from {job.file} ({job.source})")
