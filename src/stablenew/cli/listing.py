"""`stablenew queue list` and `stablenew history`: pages of jobs, and how many more there are.

A queue can hold tens of thousands of jobs (one pack row each); a listing shows one page
(`--limit`, default 50, from `--offset`) or `--all`, and always ends by saying how many jobs
are left beyond it, so nothing is silently cut.
"""

from __future__ import annotations

from typing import Any

import typer

from stablenew.app.controllers import Page
from stablenew.app.views import job_record
from stablenew.cli.common import json_option, status_option, statuses
from stablenew.cli.output import Part, out
from stablenew.cli.trail import status_part
from stablenew.jobs.job import Job
from stablenew.jobs.status import JobStatus

DEFAULT_LIMIT = 50
EVERYTHING = -1  # SQLite's LIMIT -1: no limit


def search_option() -> Any:
    return typer.Option(None, metavar="TEXT", help="Only jobs whose prompt contains TEXT.")


def limit_option() -> Any:
    return typer.Option(
        DEFAULT_LIMIT, min=1, metavar="N", help=f"Show at most N jobs (default {DEFAULT_LIMIT})."
    )


def offset_option() -> Any:
    return typer.Option(0, min=0, metavar="N", help="Skip the first N jobs (the next page).")


def all_option() -> Any:
    return typer.Option(False, "--all", help="Show every job, however many (ignores --limit).")


def list_jobs(
    ctx: typer.Context,
    status: list[str] | None = status_option("jobs"),
    search: str | None = search_option(),
    limit: int = limit_option(),
    offset: int = offset_option(),
    everything: bool = all_option(),
    json_out: bool = json_option(),
) -> None:
    """The queue: the running job first, then queued ones in run order, then finished ones
    (newest first)."""
    show(ctx, statuses(status), search, EVERYTHING if everything else limit, offset, json_out)


def history(
    ctx: typer.Context,
    status: list[str] | None = status_option("finished jobs"),
    search: str | None = search_option(),
    limit: int = limit_option(),
    offset: int = offset_option(),
    everything: bool = all_option(),
    json_out: bool = json_option(),
) -> None:
    """Finished jobs (COMPLETED, FAILED, CANCELLED), newest first."""
    wanted = statuses(status)
    show(ctx, wanted, search, EVERYTHING if everything else limit, offset, json_out, True)


def show(
    ctx: typer.Context,
    wanted: list[JobStatus] | None,
    search: str | None,
    limit: int,
    offset: int,
    json_out: bool,
    history: bool = False,
) -> None:
    out.json = json_out
    services = ctx.obj.services()
    try:
        page = services.jobs.page(wanted, search, limit, offset, history=history)
        paused = None if history else services.jobs.paused()
    finally:
        services.close()
    if out.json:
        out.document(
            "jobs",
            [job_record(j) for j in page.jobs],
            total=page.total,
            offset=page.offset,
            more=page.more,
            **({} if history else {"paused": paused}),
        )
        return
    if paused:
        out.line(("queue paused", "yellow"), f": {paused}")
    if page.jobs:
        rows = [_row(page.offset + n, job) for n, job in enumerate(page.jobs, start=1)]
        columns = ["#", "job", "status", "prio", "stages", "images", "prompt", "output / reason"]
        out.table(columns, rows, title="history" if history else "queue")
    out.line(footer(page))


def footer(page: Page) -> str:
    """Where this page is in the whole, and how to see the rest."""
    shown = len(page.jobs)
    where = f"jobs {page.offset + 1}-{page.offset + shown}" if shown else "no jobs shown"
    if not page.more:
        return f"{where} of {page.total}; 0 more"
    nxt = page.offset + shown
    return f"{where} of {page.total}; {page.more} more (--offset {nxt} for the next page, --all)"


def _row(n: int, job: Job) -> list[Part]:
    note = job.error.reason_line() if job.error else job.note or job.result.run_dir or ""
    if not note and job.spec.backend is not None and job.status == JobStatus.QUEUED:
        note = f"on {job.spec.backend}"  # pinned, and nothing stops it
    return [
        str(n),
        job.short_id,
        status_part(job.status),
        str(job.priority),
        ",".join(job.spec.stages()),
        str(job.spec.images),
        job.spec.prompt,  # whole and literal: what is sent is what is shown
        note,
    ]
