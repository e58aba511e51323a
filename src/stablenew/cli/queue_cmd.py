"""`stablenew queue ...`, `stablenew worker`, `stablenew history`: the queue from the shell."""

from __future__ import annotations

import json
import signal
import threading
from pathlib import Path
from types import FrameType
from typing import Literal

import typer
from rich.markup import escape
from rich.table import Table

from stablenew.app.intents import Overrides, parse_stages
from stablenew.app.maintenance import recover_database
from stablenew.cli.common import console, fail, on_stop_signals
from stablenew.jobs.job import Job
from stablenew.jobs.status import JobStatus

queue_app = typer.Typer(help="Look at and change the durable job queue.", no_args_is_help=True)


def jobs_table(jobs: list[Job], title: str) -> Table:
    table = Table(title=title)
    for column in ("#", "job", "status", "prio", "stages", "images", "prompt", "note"):
        table.add_column(column, overflow="fold")
    for n, job in enumerate(jobs, start=1):
        note = job.error.one_line() if job.error else job.result.run_dir or ""
        table.add_row(
            str(n),
            job.short_id,
            job.status.value,
            str(job.priority),
            ",".join(job.spec.stages()),
            str(job.spec.images),
            escape(job.spec.prompt[:60]),
            escape(str(note)[:80]),
        )
    return table


def _statuses(status: list[str] | None) -> list[JobStatus] | None:
    if not status:
        return None
    try:
        return [JobStatus(s.upper()) for s in status]
    except ValueError:
        fail(f"--status: choose from {', '.join(s.value for s in JobStatus)}", 2)


@queue_app.command("add")
def add(
    ctx: typer.Context,
    prompt: str | None = typer.Argument(None),
    pack: Path | None = typer.Option(None),
    stages: str | None = typer.Option(None),
    images: int | None = typer.Option(None, min=1),
    seed: int | None = typer.Option(None),
    priority: int = typer.Option(0, help="Higher runs first."),
) -> None:
    """Queue jobs without running them (a `stablenew worker` runs them)."""
    if bool(prompt) == bool(pack):
        fail("give either a PROMPT or --pack FILE", 2)
    overrides = Overrides(
        stages=parse_stages(stages) if stages is not None else None, images=images, seed=seed
    )
    services = ctx.obj.services()
    try:
        if pack is not None:
            specs = services.intents.pack(pack, overrides).specs
        else:
            specs = [services.intents.prompt(str(prompt), overrides, source="cli")]
        ids = services.jobs.submit_many(specs, priority, source="cli")
    finally:
        services.close()
    for job_id in ids:
        console.print(f"queued {job_id}")


@queue_app.command("list")
def list_jobs(
    ctx: typer.Context,
    status: list[str] | None = typer.Option(None, help="Only these statuses."),
    search: str | None = typer.Option(None, help="Text in the prompt."),
    json_out: bool = typer.Option(False, "--json"),
) -> None:
    """The queue: running first, then queued in run order, then finished."""
    services = ctx.obj.services()
    try:
        jobs = services.jobs.list_jobs(_statuses(status), search)
        paused = services.jobs.paused()
    finally:
        services.close()
    if json_out:
        print(
            json.dumps(
                [{"id": j.id, "status": j.status.value, "prompt": j.spec.prompt} for j in jobs],
                indent=2,
            )
        )
        return
    console.print(jobs_table(jobs, "queue" + (f" (paused: {escape(paused)})" if paused else "")))


@queue_app.command("show")
def show(ctx: typer.Context, job: str = typer.Argument(..., help="Job id or prefix.")) -> None:
    """Everything about one job: spec, status, result, error envelope."""
    services = ctx.obj.services()
    try:
        found = services.jobs.get_job(services.jobs.find(job))
    finally:
        services.close()
    print(
        json.dumps(
            {
                "id": found.id,
                "status": found.status.value,
                "priority": found.priority,
                "attempts": found.attempts,
                "created_at": found.created_at.isoformat(),
                "started_at": found.started_at.isoformat() if found.started_at else None,
                "finished_at": found.finished_at.isoformat() if found.finished_at else None,
                "retried_from": found.retried_from,
                "checkpoint_stages": found.checkpoint.stages_done if found.checkpoint else [],
                "result": found.result.model_dump(mode="json"),
                "error": found.error.model_dump(mode="json") if found.error else None,
                "spec": found.spec.model_dump(mode="json"),
            },
            indent=2,
        )
    )


def _queue_op(ctx: typer.Context, job: str, op: str, *args: str) -> None:
    services = ctx.obj.services()
    try:
        job_id = services.jobs.find(job)
        result = getattr(services.jobs, op)(job_id, *args)
    finally:
        services.close()
    console.print(f"{op} {job_id[:8]}: {result}" if result is not None else f"{op} {job_id[:8]}")


@queue_app.command("cancel")
def cancel(ctx: typer.Context, job: str) -> None:
    """Cancel a job: a queued one at once, a running one at its runner's next check."""
    _queue_op(ctx, job, "cancel_job")


@queue_app.command("retry")
def retry(ctx: typer.Context, job: str) -> None:
    """Queue a FAILED or CANCELLED job again, as a new job linked to it."""
    _queue_op(ctx, job, "retry")


@queue_app.command("move")
def move(
    ctx: typer.Context,
    job: str,
    where: Literal["up", "down", "front", "back"] = typer.Argument(...),
) -> None:
    """Move a queued job up, down, to the front or to the back."""
    _queue_op(ctx, job, "move", where)


@queue_app.command("remove")
def remove(ctx: typer.Context, job: str) -> None:
    """Remove a job that is not running."""
    _queue_op(ctx, job, "remove")


@queue_app.command("pause")
def pause(ctx: typer.Context, reason: str = typer.Option("paused by the user")) -> None:
    """Pause: the running job finishes, nothing new starts (survives restarts)."""
    services = ctx.obj.services()
    try:
        services.jobs.pause(reason)
    finally:
        services.close()
    console.print(f"queue paused: {escape(reason)}")


@queue_app.command("resume")
def resume(ctx: typer.Context) -> None:
    """Resume a paused queue."""
    services = ctx.obj.services()
    try:
        services.jobs.resume()
    finally:
        services.close()
    console.print("queue resumed")


@queue_app.command("clear")
def clear(ctx: typer.Context) -> None:
    """Remove finished jobs (their images stay on disk)."""
    services = ctx.obj.services()
    try:
        removed = services.jobs.clear_finished()
    finally:
        services.close()
    console.print(f"removed {removed} finished job(s)")


def history(
    ctx: typer.Context,
    status: list[str] | None = typer.Option(None, help="COMPLETED, FAILED or CANCELLED."),
    search: str | None = typer.Option(None, help="Text in the prompt."),
) -> None:
    """Finished jobs, newest first."""
    services = ctx.obj.services()
    try:
        jobs = services.jobs.history(_statuses(status), search)
    finally:
        services.close()
    console.print(jobs_table(jobs, "history"))


def worker(
    ctx: typer.Context,
    backend: str | None = typer.Option(None, help="Attach to a running backend at this URL."),
) -> None:
    """Run queued jobs until stopped (Ctrl+C, SIGTERM or SIGHUP); a running job is re-queued to
    resume. A home has one worker: a second one refuses, naming the first."""
    services = ctx.obj.services(backend_url=backend)
    stop = threading.Event()
    stopped_by = 0

    def on_signal(signum: int, frame: FrameType | None = None) -> None:
        nonlocal stopped_by
        stopped_by = signum
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    restore = on_stop_signals(on_signal)
    try:
        services.start()
        console.print(f"worker running against {services.backend.url}; Ctrl+C to stop")
        while not stop.wait(0.5):
            pass
    finally:
        services.close()
        restore()
    # A clean stop (Ctrl+C, or SIGTERM/SIGHUP from a service manager) is a success.
    why = f" ({signal.Signals(stopped_by).name})" if stopped_by else ""
    console.print(f"worker stopped{why}")


@queue_app.command("recover")
def recover(ctx: typer.Context) -> None:
    """Rescue a damaged jobs.db: copy every job that can still be read into a fresh database and
    keep the damaged file aside (nothing is deleted)."""
    report = recover_database(ctx.obj.home)
    console.print(report.summary())
    if not report.ok:
        raise typer.Exit(1)
