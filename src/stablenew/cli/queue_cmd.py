"""`stablenew queue ...`: the durable job queue from the shell (add, look, change, undo)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import typer

from stablenew.app.intents import Overrides, parse_stages
from stablenew.app.maintenance import recover_database
from stablenew.app.views import iso_utc, job_record
from stablenew.cli import listing
from stablenew.cli.common import (
    EXIT_INPUT,
    fail,
    images_option,
    json_option,
    priority_option,
    seed_option,
    stages_option,
    status_option,
    statuses,
)
from stablenew.cli.output import Part, out
from stablenew.cli.trail import status_part
from stablenew.jobs.job import Job
from stablenew.jobs.status import JobStatus

queue_app = typer.Typer(help="Look at and change the durable job queue.", no_args_is_help=True)
queue_app.command("list")(listing.list_jobs)


def job_argument(required: bool = True) -> Any:
    return typer.Argument(
        ... if required else None, metavar="JOB", help="Job id, or any unique prefix of it."
    )


@queue_app.command("add")
def add(
    ctx: typer.Context,
    prompt: str | None = typer.Argument(
        None, metavar="PROMPT", help="What to draw (or use --pack)."
    ),
    pack: Path | None = typer.Option(
        None, metavar="FILE", help="A prompt pack: NAME.txt and/or NAME.json."
    ),
    stages: str | None = stages_option(),
    images: int | None = images_option(),
    seed: int | None = seed_option(),
    priority: int = priority_option(),
    output: Path | None = typer.Option(
        None, "--out", metavar="DIR", help="Output root for these jobs (default: <home>/outputs)."
    ),
    json_out: bool = json_option(),
) -> None:
    """Queue jobs without running them (a `stablenew worker` or the next `run` runs them)."""
    out.json = json_out
    if bool(prompt) == bool(pack):
        fail("give either a PROMPT or --pack FILE", EXIT_INPUT)
    overrides = Overrides(
        stages=parse_stages(stages) if stages is not None else None, images=images, seed=seed
    )
    services = ctx.obj.services(output=output)
    try:
        if pack is not None:
            expansion = services.intents.pack(pack, overrides)
            for warning in expansion.pack.warnings:
                out.warn(warning)
            specs = expansion.specs
        else:
            specs = [services.intents.prompt(str(prompt), overrides, source="cli")]
        ids = services.jobs.submit_many(specs, priority, source="cli")
    finally:
        services.close()
    if out.json:
        out.document("ids", ids)
        return
    for job_id in ids:
        out.line(f"queued {job_id}")


@queue_app.command("show")
def show(
    ctx: typer.Context,
    job: str = job_argument(),
    json_out: bool = json_option(),
) -> None:
    """Everything about one job: its settings, status, times, result and error envelope."""
    out.json = json_out
    services = ctx.obj.services()
    try:
        found = services.jobs.get_job(services.jobs.find(job))
    finally:
        services.close()
    if out.json:
        out.document("job", job_record(found))
        return
    for label, value in describe_job(found):
        out.line((f"{label + ':':<13}", "bold"), *(value if isinstance(value, list) else [value]))


def describe_job(job: Job) -> list[tuple[str, Part | list[Part]]]:
    """The human view of one job, field by field (text from the user shown literally)."""
    spec = job.spec
    lines: list[tuple[str, Part | list[Part]]] = [
        ("job", job.id),
        ("status", [status_part(job.status), " (cancel requested)" * job.cancel_requested]),
        ("priority", str(job.priority)),
        ("attempts", str(job.attempts)),
        ("created", iso_utc(job.created_at) or ""),
        ("started", iso_utc(job.started_at) or "-"),
        ("finished", iso_utc(job.finished_at) or "-"),
        ("stages", " -> ".join(spec.stages())),
        ("images", str(spec.images)),
        ("seed", _seeds(job)),
        ("model", spec.model or "(the backend's current one)"),
        ("size", f"{spec.width}x{spec.height}, {spec.steps} steps, {spec.sampler}"),
        ("prompt", spec.prompt),
        ("negative", spec.negative_prompt or "-"),
        ("output root", spec.output.root or "(the configured one)"),
    ]
    if job.checkpoint is not None and job.checkpoint.stages_done:
        lines.append(("done", ", ".join(job.checkpoint.stages_done) + " (a resume starts after)"))
    if job.retried_from:
        lines.append(("retry of", job.retried_from))
    if job.result.run_dir:
        lines.append(("run folder", job.result.run_dir))
    lines += [("image", path) for path in job.result.images]
    if job.error is not None:
        lines.append(("error", (job.error.one_line(), "red")))
        lines += [("cause", str(cause)) for cause in job.error.causes[1:]]
        lines += [("artifact", path) for path in job.error.artifacts]
    return lines


def _seeds(job: Job) -> str:
    """The seed asked for, and the ones fixed for each image once the job started."""
    asked = "random" if job.spec.seed == -1 else str(job.spec.seed)
    used = job.result.seeds or (job.checkpoint.seeds if job.checkpoint else [])
    return f"{asked}; used {', '.join(map(str, used))}" if used else asked


@queue_app.command("cancel")
def cancel(
    ctx: typer.Context,
    job: str | None = job_argument(required=False),
    all_pending: bool = typer.Option(
        False,
        "--all-pending",
        help="Cancel every QUEUED job instead of one (the running job goes on).",
    ),
) -> None:
    """Cancel a job (a queued one at once, a running one at its runner's next check), or every
    queued job with --all-pending."""
    if bool(job) == all_pending:
        fail("give either a JOB or --all-pending", EXIT_INPUT)
    services = ctx.obj.services()
    try:
        if all_pending:
            count = services.jobs.cancel_all_pending(source="cli")
            running = services.jobs.page([JobStatus.RUNNING], limit=1).total
        else:
            job_id = services.jobs.find(str(job))
            before = services.jobs.cancel_job(job_id, source="cli")
    finally:
        services.close()
    if all_pending:
        goes_on = "; the running job goes on" if running else ""
        out.line(f"cancelled {count} queued job(s){goes_on}")
    elif before == JobStatus.RUNNING:
        out.line(f"cancel requested for {job_id[:8]}: it stops at its runner's next check")
    elif before.finished:
        out.line(f"{job_id[:8]} is {before.value} already: nothing to cancel")
    else:
        out.line(f"cancelled {job_id[:8]}")


@queue_app.command("retry")
def retry(ctx: typer.Context, job: str = job_argument()) -> None:
    """Queue a FAILED or CANCELLED job again, as a new job linked to it."""
    services = ctx.obj.services()
    try:
        old = services.jobs.find(job)
        new = services.jobs.retry(old, source="cli")
    finally:
        services.close()
    out.line(f"queued {new} (a retry of {old[:8]})")


@queue_app.command("move")
def move(
    ctx: typer.Context,
    job: str = job_argument(),
    where: Literal["up", "down", "front", "back"] = typer.Argument(
        ..., metavar="WHERE", help="up, down, front or back."
    ),
) -> None:
    """Move a queued job up, down, to the front or to the back of the queue."""
    services = ctx.obj.services()
    try:
        job_id = services.jobs.find(job)
        services.jobs.move(job_id, where)
    finally:
        services.close()
    out.line(f"moved {job_id[:8]} {where}")


@queue_app.command("remove")
def remove(
    ctx: typer.Context,
    job: str | None = job_argument(required=False),
    status: list[str] | None = status_option("jobs"),
) -> None:
    """Remove a job that is not running, or every job in the given statuses (--status), e.g.
    `--status queued` to undo a pack. Their images stay on disk."""
    wanted = statuses(status)
    if bool(job) == bool(wanted):
        fail("give either a JOB or --status STATUS", EXIT_INPUT)
    if wanted and JobStatus.RUNNING in wanted:
        fail("--status: a running job cannot be removed; cancel it first", EXIT_INPUT)
    services = ctx.obj.services()
    try:
        if wanted:
            removed = services.jobs.remove_where(wanted)
        else:
            job_id = services.jobs.find(str(job))
            services.jobs.remove(job_id)
    finally:
        services.close()
    if wanted:
        names = ", ".join(s.value for s in wanted)
        out.line(f"removed {removed} job(s) ({names})")
    else:
        out.line(f"removed {job_id[:8]}")


@queue_app.command("pause")
def pause(
    ctx: typer.Context,
    reason: str = typer.Option(
        "paused by the user", metavar="TEXT", help="Why (shown wherever the queue is)."
    ),
) -> None:
    """Pause: the running job finishes, nothing new starts (survives restarts)."""
    services = ctx.obj.services()
    try:
        services.jobs.pause(reason, source="cli")
    finally:
        services.close()
    out.line(f"queue paused: {reason}")


@queue_app.command("resume")
def resume(ctx: typer.Context) -> None:
    """Resume a paused queue."""
    services = ctx.obj.services()
    try:
        was_paused = services.jobs.resume(source="cli")
    finally:
        services.close()
    out.line("queue resumed" if was_paused else "the queue was not paused")


@queue_app.command("clear")
def clear(ctx: typer.Context) -> None:
    """Remove every finished job, which empties the history too (images stay on disk)."""
    services = ctx.obj.services()
    try:
        removed = services.jobs.clear_finished()
    finally:
        services.close()
    out.line(
        f"removed {removed} finished job(s): the history is empty now (their images stay on disk)"
    )


@queue_app.command("recover")
def recover(ctx: typer.Context) -> None:
    """Rescue a damaged jobs.db: copy every job that can still be read into a fresh database and
    keep the damaged file aside (nothing is deleted)."""
    report = recover_database(ctx.obj.home)
    out.line(report.summary())
    if not report.ok:
        raise typer.Exit(1)
