"""`stablenew run`: submit through the controller, show live progress, summarize, exit 0 only
when every job completed. The first Ctrl+C cancels cleanly; a second one leaves at once."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path
from types import FrameType
from typing import Any

import typer
from rich.live import Live
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table

from stablenew.app.events import FINISHED_KINDS, JobLifecycleLogEvent
from stablenew.app.intents import Overrides, parse_stages
from stablenew.app.services import Role, Services
from stablenew.cli.common import (
    EXIT_INTERRUPTED,
    EXIT_TERMINATED,
    console,
    errors,
    fail,
    on_stop_signals,
)
from stablenew.jobs.job import Job
from stablenew.jobs.spec import JobSpec
from stablenew.jobs.status import JobStatus


def run(
    ctx: typer.Context,
    prompt: str | None = typer.Argument(None, help="What to draw (or use --pack)."),
    pack: Path | None = typer.Option(None, help="A prompt pack: NAME.txt and/or NAME.json."),
    stages: str | None = typer.Option(
        None, help="Stages to run, e.g. txt2img,img2img,adetailer,upscale."
    ),
    images: int | None = typer.Option(None, min=1, help="Images per prompt."),
    seed: int | None = typer.Option(None, help="Seed of the first image (-1: random)."),
    backend: str | None = typer.Option(None, help="Attach to a running backend at this URL."),
    out: Path | None = typer.Option(None, help="Output root (default: <home>/outputs)."),
    json_out: bool = typer.Option(False, "--json", help="Print machine-readable results."),
) -> None:
    """Generate images: queue the jobs and run them to the end with live progress."""
    if bool(prompt) == bool(pack):
        fail("give either a PROMPT or --pack FILE", 2)
    overrides = Overrides(
        stages=parse_stages(stages) if stages is not None else None, images=images, seed=seed
    )
    services = ctx.obj.services(backend_url=backend, output=out)
    try:
        if pack is not None:
            expansion = services.intents.pack(pack, overrides)
            for warning in expansion.pack.warnings:
                errors.print(f"[yellow]warning:[/] {escape(warning)}")
            specs = expansion.specs
        else:
            specs = [services.intents.prompt(str(prompt), overrides, source="cli")]
    except BaseException:
        services.close()
        raise
    raise typer.Exit(CliRun(services, json_out, attach_note=backend is not None).execute(specs))


class CliRun:
    """One `stablenew run`: it owns the home if nobody does (runner and backend here), else it
    is a client of the owner: its jobs join that queue and it follows them to their end."""

    def __init__(self, services: Services, json_out: bool, attach_note: bool = False) -> None:
        self.services = services
        self.jobs = services.jobs
        self.json_out = json_out
        self.attach_note = attach_note
        self.ids: list[str] = []
        self.wanted: set[str] = set()
        self.seen_seq = 0
        self.finished: set[str] = set()
        self.changed = threading.Event()
        self.interrupts = 0
        self.terminated = 0

    def execute(self, specs: list[JobSpec]) -> int:
        previous = signal.signal(signal.SIGINT, self._on_sigint)
        restore = on_stop_signals(self._on_terminate)
        try:
            if self.services.open() == Role.CLIENT:
                self._say_client()
            self.jobs.subscribe(self._on_event)
            self.seen_seq = self.jobs.last_seq()
            self.ids = self.jobs.submit_many(specs, source="cli")
            self.wanted = set(self.ids)
            if self.json_out:
                self._wait(lambda: None)
            else:
                self._watch()
            jobs = [self.jobs.get_job(i) for i in self.ids]
        finally:
            self.services.close()
            signal.signal(signal.SIGINT, previous)
            restore()
        if self.terminated:
            left = sum(not j.status.finished for j in jobs)
            errors.print(f"stopped: {left} job(s) stay queued and resume at the next start")
            return EXIT_TERMINATED
        self._summary(jobs)
        if self.interrupts:
            return EXIT_INTERRUPTED
        return 0 if jobs and all(j.status == JobStatus.COMPLETED for j in jobs) else 1

    def _say_client(self) -> None:
        owner = self.services.owner()
        who = owner.describe() if owner else "another process"
        note = " (--backend is ignored: the owner's backend runs them)" if self.attach_note else ""
        errors.print(f"this home is run by {escape(who)}: the jobs join its queue{note}")

    # -- waiting -----------------------------------------------------------------------------

    def _on_event(self, event: JobLifecycleLogEvent) -> None:
        if event.kind in FINISHED_KINDS:
            self.changed.set()  # the waiting loop reads the outcome from the store's log

    def _on_sigint(self, signum: int, frame: FrameType | None) -> None:
        self.interrupts += 1
        if self.interrupts > 1:
            errors.print("second Ctrl+C: stopping the backend and leaving now")
            if self.services.role == Role.OWNER:
                self.services.backend.stop(grace=1)
            os._exit(EXIT_INTERRUPTED)
        errors.print("Ctrl+C: cancelling (press again to leave at once)")
        for job_id in self.ids:
            if job_id not in self.finished:
                self.jobs.cancel_job(job_id, source="cli")
        self.changed.set()

    def _on_terminate(self, signum: int) -> None:
        self.terminated = signum  # like a shutdown: running work is re-queued, not cancelled
        self.changed.set()

    def _done(self) -> bool:
        # The store's log also sees what the bus cannot: a cancel from another process.
        for event in self.jobs.events_since(self.seen_seq):
            self.seen_seq = event.store_seq or self.seen_seq
            status = event.status
            if status is not None and status.finished and event.job_id in self.wanted:
                self.finished.add(event.job_id)
        return len(self.finished) >= len(self.ids) or bool(self.terminated)

    def _wait(self, refresh: Any) -> None:
        while not self._done():
            self.changed.wait(0.2)
            self.changed.clear()
            refresh()

    def _watch(self) -> None:
        progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[detail]}"),
            console=console,
            transient=False,
        )
        jobs_task = progress.add_task("jobs", total=len(self.ids), detail="")
        step_task = progress.add_task("waiting", total=1, detail="")

        def refresh() -> None:
            progress.update(jobs_task, completed=len(self.finished))
            active = self.services.state.active
            if active is None or active.stage is None:
                return
            where = f"{active.job_id[:8]} {active.stage}"
            if active.image_index:
                where += f" image {active.image_index}/{active.total}"
            eta = f"ETA {active.eta:.0f}s" if active.eta else ""
            progress.update(
                step_task,
                description=where,
                total=max(active.steps, 1),
                completed=active.step,
                detail=eta,
            )

        with Live(progress, console=console, refresh_per_second=8, transient=False):
            self._wait(refresh)
            refresh()

    # -- the end -------------------------------------------------------------------------------

    def _summary(self, jobs: list[Job]) -> None:
        if self.json_out:
            print(json.dumps(summary_record(jobs), indent=2))
            return
        table = Table(title="StableNew run")
        for column in ("job", "status", "images", "output / reason"):
            table.add_column(column)
        for job in jobs:
            colour = {"COMPLETED": "green", "FAILED": "red"}.get(job.status.value, "yellow")
            detail = (
                job.error.one_line()
                if job.status == JobStatus.FAILED and job.error is not None
                else job.result.run_dir or ""
            )
            table.add_row(
                job.short_id,
                f"[{colour}]{job.status.value}[/]",
                str(len(job.result.images)),
                escape(str(detail)),
            )
        console.print(table)


def summary_record(jobs: list[Job]) -> dict[str, Any]:
    counts = {s.value.lower(): sum(j.status == s for j in jobs) for s in JobStatus}
    return {
        "jobs": [
            {
                "id": j.id,
                "status": j.status.value,
                "prompt_chars": len(j.spec.prompt),
                "run_dir": j.result.run_dir,
                "images": j.result.images,
                "manifests": j.result.manifests,
                "error": j.error.model_dump(mode="json") if j.error else None,
                "duration_s": (
                    round((j.finished_at - j.started_at).total_seconds(), 3)
                    if j.finished_at and j.started_at
                    else None
                ),
            }
            for j in jobs
        ],
        **{k: v for k, v in counts.items() if k in ("completed", "failed", "cancelled")},
        "finished_at": time.time(),
    }
