"""`stablenew queue ...`: the durable job queue from the shell (add, look, change, undo)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import typer
from pydantic import ValidationError

from stablenew import private_files
from stablenew.app.intents import changed, parse_assignments
from stablenew.app.maintenance import recover_database
from stablenew.app.queue_export import QueueExport
from stablenew.app.views import iso_utc, job_record
from stablenew.cli import listing
from stablenew.cli.common import (
    EXIT_INPUT,
    fail,
    json_option,
    priority_option,
    status_option,
    statuses,
)
from stablenew.cli.job_options import JobOptions, job_options, read_spec_file, specs_from
from stablenew.cli.output import Part, out
from stablenew.cli.trail import status_part
from stablenew.jobs.job import Job
from stablenew.jobs.spec import JobSpec, problems
from stablenew.jobs.status import JobStatus

queue_app = typer.Typer(help="Look at and change the durable job queue.", no_args_is_help=True)
queue_app.command("list")(listing.list_jobs)


def job_argument(required: bool = True) -> Any:
    return typer.Argument(
        ... if required else None, metavar="JOB", help="Job id, or any unique prefix of it."
    )


@queue_app.command("add")
@job_options
def add(
    ctx: typer.Context,
    prompt: str | None = typer.Argument(
        None, metavar="PROMPT", help="What to draw (or --pack, --init-image, --spec)."
    ),
    priority: int = priority_option(),
    output: Path | None = typer.Option(
        None, "--out", metavar="DIR", help="Output root for these jobs (default: <home>/outputs)."
    ),
    json_out: bool = json_option(),
    *,
    job: JobOptions,
) -> None:
    """Queue jobs without running them (a `stablenew worker` or the next `run` runs them)."""
    out.json = json_out
    services = ctx.obj.services(output=output)
    try:
        built = specs_from(services, job)
        for warning in built.warnings:
            out.warn(warning)
        ids = services.jobs.submit_many(built.specs, priority, source="cli")
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
        ("backend", spec.backend or "any"),
        ("size", f"{spec.width}x{spec.height}, {spec.steps} steps, {spec.sampler}"),
        ("prompt", spec.prompt),
        ("negative", spec.negative_prompt or "-"),
        ("output root", spec.output.root or "(the configured one)"),
    ]
    if job.note and job.status == JobStatus.QUEUED:
        lines.insert(2, ("waiting", (job.note, "yellow")))
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


def set_option() -> Any:
    return typer.Option(
        None,
        "--set",
        metavar="FIELD=VALUE",
        help="Change a setting, e.g. --set steps=30 --set width=768 --set upscale.enabled=true "
        "(dotted JobSpec fields; repeatable).",
    )


def spec_option() -> Any:
    return typer.Option(
        None, "--spec", metavar="FILE", help="A whole JobSpec as JSON, replacing the job's."
    )


def _changed_spec(current: JobSpec, sets: list[str] | None, spec_file: Path | None) -> JobSpec:
    spec = read_spec_file(spec_file) if spec_file is not None else current
    if sets:
        spec = changed(spec, parse_assignments(sets))
    return spec


@queue_app.command("retry")
def retry(
    ctx: typer.Context,
    job: str = job_argument(),
    sets: list[str] | None = set_option(),
    spec_file: Path | None = spec_option(),
) -> None:
    """Queue a FAILED or CANCELLED job again, as a new job linked to it; with --set or --spec,
    with changes (a smaller size after running out of memory)."""
    services = ctx.obj.services()
    try:
        old = services.jobs.find(job)
        if sets or spec_file:
            spec = _changed_spec(services.jobs.get_job(old).spec, sets, spec_file)
            new = services.jobs.retry_with(old, spec, source="cli")
        else:
            new = services.jobs.retry(old, source="cli")
    finally:
        services.close()
    out.line(f"queued {new} (a retry of {old[:8]})")


@queue_app.command("edit")
def edit(
    ctx: typer.Context,
    job: str = job_argument(),
    sets: list[str] | None = set_option(),
    spec_file: Path | None = spec_option(),
) -> None:
    """Change a QUEUED job (refused once it runs); the change is validated first and recorded
    as an event."""
    if not sets and spec_file is None:
        fail("say what to change: --set FIELD=VALUE ... or --spec FILE", EXIT_INPUT)
    services = ctx.obj.services()
    try:
        job_id = services.jobs.find(job)
        spec = _changed_spec(services.jobs.get_job(job_id).spec, sets, spec_file)
        event = services.jobs.edit(job_id, spec, source="cli")
    finally:
        services.close()
    out.line(f"edited {job_id[:8]}: {event.message.removeprefix('Job edited while queued: ')}")


@queue_app.command("export")
def export(
    ctx: typer.Context,
    target: Path = typer.Argument(
        ..., metavar="FILE", help="Where to write the JSON ('-': stdout)."
    ),
) -> None:
    """Write the pending queue (specs, priorities, order) as JSON: `queue import` queues it
    again, here or on another machine."""
    services = ctx.obj.services()
    try:
        exported = services.jobs.export_queue()
    finally:
        services.close()
    text = exported.model_dump_json(by_alias=True, indent=2)
    if str(target) == "-":
        out.stdout.write(text + "\n")
        return
    try:
        private_files.write(target, (text + "\n").encode("utf-8"))  # every queued prompt
    except OSError as exc:
        fail(f"{target}: cannot write it: {exc.strerror or exc}", 1)
    out.line(f"exported {len(exported.jobs)} queued job(s) to {target}")


@queue_app.command("import")
def import_queue(
    ctx: typer.Context,
    source: Path = typer.Argument(..., metavar="FILE", help="A `queue export` JSON file."),
    json_out: bool = json_option(),
) -> None:
    """Queue every job of a `queue export` file, in its order; the whole file is validated
    before anything is queued."""
    out.json = json_out
    try:
        exported = QueueExport.model_validate_json(source.read_bytes())
    except OSError as exc:
        fail(f"{source}: cannot read it: {exc.strerror or exc}", EXIT_INPUT)
    except ValidationError as exc:
        fail(f"{source}: not a queue export: {problems(exc)}", EXIT_INPUT, "InputError")
    services = ctx.obj.services()
    try:
        ids = services.jobs.import_queue(exported, source="cli")
    finally:
        services.close()
    if out.json:
        out.document("ids", ids)
        return
    out.line(f"queued {len(ids)} job(s) from {source}")


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
        services.jobs.move(job_id, where, source="cli")
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
            removed = services.jobs.remove_where(wanted, source="cli")
        else:
            job_id = services.jobs.find(str(job))
            services.jobs.remove(job_id, source="cli")
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
        removed = services.jobs.clear_finished(source="cli")
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
