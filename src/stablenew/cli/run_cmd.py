"""`stablenew run`: submit through the controller, follow this run's own jobs to their end,
summarize them, exit 0 only when every one of them completed.

The queue is one queue: jobs queued earlier run first, each with the settings it was queued
with (its output root is recorded at submit). `run` says how many are ahead, shows them in its
progress, and its summary and exit code cover its own jobs only. The first Ctrl+C cancels its
own jobs (never anyone else's); a second one leaves at once.
"""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path
from types import FrameType

import typer

from stablenew.app.backend_info import backend_kind
from stablenew.app.events import EventKind, JobLifecycleLogEvent, QueuedData
from stablenew.app.services import Role, Services
from stablenew.app.views import iso_utc, job_record
from stablenew.cli.common import (
    EXIT_INTERRUPTED,
    EXIT_TERMINATED,
    backend_option,
    backends_note,
    give_up_starting,
    json_option,
    on_stop_signals,
    priority_option,
    set_from_signal,
)
from stablenew.cli.job_options import JobOptions, job_options, specs_from
from stablenew.cli.output import out
from stablenew.cli.run_view import EventsView, LineView, LiveView, QuietView, RunView
from stablenew.cli.trail import status_part
from stablenew.errors import StableNewError
from stablenew.jobs.job import Job, utcnow
from stablenew.jobs.spec import JobSpec
from stablenew.jobs.status import JobStatus

WAIT = 0.2  # seconds between reads of the store's log when nothing in this process stirs


@job_options
def run(
    ctx: typer.Context,
    prompt: str | None = typer.Argument(
        None, metavar="PROMPT", help="What to draw (or --pack, --init-image, --spec)."
    ),
    priority: int = priority_option(),
    backend: str | None = backend_option(),
    output: Path | None = typer.Option(
        None, "--out", metavar="DIR", help="Output root for these jobs (default: <home>/outputs)."
    ),
    json_out: bool = json_option(),
    json_events: bool = typer.Option(
        False, "--json-events", help="Stream the jobs' lifecycle events as NDJSON while they run."
    ),
    *,
    job: JobOptions,
) -> None:
    """Generate images: queue the jobs and follow them to the end with live progress. Jobs
    already queued run first, with their own settings; the summary and exit code cover this
    run's jobs."""
    out.json = json_out or json_events
    services = ctx.obj.services(backend_url=backend, output=output)
    try:
        built = specs_from(services, job)
        for warning in built.warnings:
            out.warn(warning)
    except BaseException:
        services.close()
        raise
    code = CliRun(services, priority, attach_note=backend is not None, events=json_events).execute(
        built.specs
    )
    raise typer.Exit(code)


class CliRun:
    """One `stablenew run`: it owns the home if nobody does (runner and backend here), else it
    is a client of the owner: its jobs join that queue and it follows them to their end."""

    def __init__(
        self,
        services: Services,
        priority: int = 0,
        attach_note: bool = False,
        events: bool = False,
    ) -> None:
        self.services = services
        self.events = events
        self.jobs = services.jobs
        self.priority = priority
        self.attach_note = attach_note
        self.ids: list[str] = []
        self.index: dict[str, int] = {}
        self.finished: set[str] = set()
        self.ahead = 0
        self.foreign_finished: set[str] = set()
        self.queued: list[QueuedData] = []
        self.seen_seq = 0
        self.changed = threading.Event()
        self.interrupts = 0
        self.cancelled = False
        self.terminated = 0

    # -- the tally a view reads ----------------------------------------------------------------

    @property
    def total(self) -> int:
        return len(self.ids)

    @property
    def done(self) -> int:
        return len(self.finished)

    @property
    def ahead_left(self) -> int:
        return max(0, self.ahead - len(self.foreign_finished))

    def tag(self, job_id: str | None) -> str:
        if job_id is None:
            return ""
        if job_id in self.index:
            return f" ({self.index[job_id]}/{len(self.ids)})"
        return " (ahead of yours)"

    # -- running -------------------------------------------------------------------------------

    def execute(self, specs: list[JobSpec]) -> int:
        previous = signal.signal(signal.SIGINT, self._on_sigint)
        restore = on_stop_signals(self._on_terminate)
        try:
            # From before the runner starts: the first job ahead may start at once.
            self.seen_seq = self.jobs.last_seq()
            if self.services.open() == Role.CLIENT:
                self._say_client()
            elif not out.json:
                self._say_backend()
            self.jobs.subscribe(self._on_event)
            self.ids = self.jobs.submit_many(specs, self.priority, source="cli")
            self.index = {job_id: n for n, job_id in enumerate(self.ids, start=1)}
            self.ahead = next((q.ahead for q in self.queued if q.job_ids == tuple(self.ids)), 0)
            self._say_queued()
            view = self._view()
            with view.showing():
                self._wait(view)
            if self.terminated:
                self.services.stop_runners()  # the running job re-queued before it is summarised
            jobs = [self.jobs.get_job(i) for i in self.ids]
        finally:
            self.services.close()
            signal.signal(signal.SIGINT, previous)
            restore()
        self._summary(jobs)
        if self.terminated:
            left = sum(not j.status.finished for j in jobs)
            out.note(f"stopped: {left} job(s) stay queued and resume at the next start")
            return EXIT_TERMINATED
        if self.interrupts:
            return EXIT_INTERRUPTED
        return 0 if jobs and all(j.status == JobStatus.COMPLETED for j in jobs) else 1

    def _view(self) -> RunView:
        if self.events:
            out.stream = True
            return EventsView()
        if out.json:
            return QuietView()
        if out.tty:
            return LiveView(self, self._images_of)
        return LineView(self, self._images_of, pool=len(self.services.backends) > 1)

    def _images_of(self, job_id: str) -> int | None:
        try:
            return self.jobs.get_job(job_id).spec.images
        except StableNewError:  # removed meanwhile
            return None

    # -- what it says before waiting -----------------------------------------------------------

    def _say_client(self) -> None:
        owner = self.services.owner()
        who = owner.describe() if owner else "another process"
        note = " (--backend is ignored: the owner's backend runs them)" if self.attach_note else ""
        kind = backend_kind(self.services.backend)
        on = f" on its {kind}" if kind else ""
        out.note(f"this home is run by {who}: the jobs join its queue{on}{note}")

    def _say_backend(self) -> None:
        if len(self.services.backends) > 1:
            out.note(backends_note(self.services))
            return
        kind = backend_kind(self.services.backend) or "backend"
        out.note(f"backend: {kind} at {self.services.backend.shown_url}")

    def _say_queued(self) -> None:
        if out.json:
            return
        ahead = f"; {self.ahead} job(s) ahead of yours run first" if self.ahead else ""
        out.line(f"queued {len(self.ids)} job(s){ahead}")
        paused = self.jobs.paused()
        if paused:
            out.note(
                f"the queue is paused ({paused}): the jobs wait until `stablenew queue resume`"
                " (Ctrl+C cancels them)"
            )

    # -- waiting -------------------------------------------------------------------------------

    def _on_event(self, event: JobLifecycleLogEvent) -> None:
        if isinstance(event.data, QueuedData):
            self.queued.append(event.data)  # how many were ahead when these were queued
        if event.kind != EventKind.PROGRESS:  # steps are read from AppState at each turn
            self.changed.set()

    def _on_sigint(self, signum: int, frame: FrameType | None) -> None:
        if not self.ids:
            give_up_starting(signum)  # nothing queued yet (the backend is starting): leave
        self.interrupts += 1
        if self.interrupts > 1:
            out.note("second Ctrl+C: stopping the backend and leaving now")
            if self.services.role == Role.OWNER:
                self.services.backend.stop(grace=1)
            os._exit(EXIT_INTERRUPTED)
        out.note("Ctrl+C: cancelling this run's jobs (press again to leave at once)")
        set_from_signal(self.changed)  # the waiting loop cancels: SQLite is not for handlers

    def _on_terminate(self, signum: int) -> None:
        if not self.ids:
            give_up_starting(signum)  # nothing queued yet (the backend is starting): leave
        self.terminated = signum  # like a shutdown: running work is re-queued, not cancelled
        set_from_signal(self.changed)

    def _wait(self, view: RunView) -> None:
        while True:
            if self.interrupts and not self.cancelled:
                self.cancelled = True
                for job_id in self.ids:
                    if job_id not in self.finished:
                        self.jobs.cancel_job(job_id, source="cli")
            self._advance(view)
            if len(self.finished) >= len(self.ids) or self.terminated:
                return
            self.changed.wait(WAIT)
            self.changed.clear()

    def _advance(self, view: RunView) -> None:
        """Read what happened since last time from the store's log, which also holds what this
        process's bus cannot hear (a cancel from another shell, another owner's runner)."""
        for event in self.jobs.events_since(self.seen_seq):
            self.seen_seq = event.store_seq or self.seen_seq
            status = event.status
            if event.job_id is not None and status is not None and status.finished:
                if event.job_id in self.index:
                    self.finished.add(event.job_id)
                else:
                    self.foreign_finished.add(event.job_id)
            view.event(event)
        view.refresh(self.services.state.active)

    # -- the end -------------------------------------------------------------------------------

    def _summary(self, jobs: list[Job]) -> None:
        counts = {s.value.lower(): sum(j.status == s for j in jobs) for s in JobStatus}
        if out.json:
            out.document(
                "jobs",
                [job_record(j) for j in jobs],
                ahead=self.ahead,
                completed=counts["completed"],
                failed=counts["failed"],
                cancelled=counts["cancelled"],
                unfinished=counts["queued"] + counts["running"],
                finished_at=iso_utc(utcnow()),
            )
            return
        # One line per job, never a table: a full path must stay one piece to copy.
        out.line(("summary", "bold"), f" of this run's {len(jobs)} job(s):")
        for job in jobs:
            images = f"{len(job.result.images)} image(s)"
            out.line(f"job {job.short_id} ", status_part(job.status), f" {images}: {_detail(job)}")
        unfinished = counts["queued"] + counts["running"]
        left = f", {unfinished} unfinished" if unfinished else ""
        out.line(
            f"{counts['completed']} completed, {counts['failed']} failed, "
            f"{counts['cancelled']} cancelled{left}"
        )


def _detail(job: Job) -> str:
    """A failed job's reason (and where its run folder is), else the full run folder."""
    if job.status == JobStatus.FAILED and job.error is not None:
        folder = f" (run folder {job.result.run_dir})" if job.result.run_dir else ""
        return job.error.reason_line() + folder
    if job.status == JobStatus.QUEUED:
        return "stays queued; it resumes at the next start"
    if job.result.run_dir:
        return job.result.run_dir
    return "cancelled before it started" if job.status == JobStatus.CANCELLED else "no run folder"
