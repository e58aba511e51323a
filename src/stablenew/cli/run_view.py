"""How `stablenew run` shows its progress: live bars on a terminal, plain lines in a pipe,
nothing but the final document under `--json`.

Both views show the jobs ahead of this run's own (they run first: the queue is one queue) and
tag every line with whose job it is: "(2/3)" for this run's second of three jobs, "(ahead of
yours)" for a job queued before them.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Protocol

from rich.live import Live
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn

from stablenew.app.events import FINISHED_KINDS, EventKind, JobLifecycleLogEvent
from stablenew.app.state import ActiveStage
from stablenew.app.views import EventView
from stablenew.cli.output import out
from stablenew.cli.trail import ImagesOf, describe


class Tally(Protocol):
    """What a view reads of the run it shows."""

    @property
    def total(self) -> int: ...
    @property
    def done(self) -> int: ...
    @property
    def ahead_left(self) -> int: ...
    def tag(self, job_id: str | None) -> str: ...


class RunView(Protocol):
    @contextmanager
    def showing(self) -> Iterator[None]: ...
    def event(self, event: JobLifecycleLogEvent) -> None: ...
    def refresh(self, active: ActiveStage | None) -> None: ...


class QuietView:
    """`--json`: the document at the end says everything."""

    @contextmanager
    def showing(self) -> Iterator[None]:
        yield

    def event(self, event: JobLifecycleLogEvent) -> None:
        pass

    def refresh(self, active: ActiveStage | None) -> None:
        pass


class EventsView(QuietView):
    """`--json-events`: every event of the run's jobs (and those ahead) as one NDJSON line."""

    def event(self, event: JobLifecycleLogEvent) -> None:
        out.ndjson("event", EventView.of(event).model_dump(mode="json"))


class LineView:
    """A pipe or a file: one plain line per job start and end and per stage of an image."""

    def __init__(self, tally: Tally, images_of: ImagesOf, pool: bool = False) -> None:
        self.tally = tally
        self.images_of = images_of
        self.pool = pool  # several backends: a backend's line names it

    @contextmanager
    def showing(self) -> Iterator[None]:
        yield

    def event(self, event: JobLifecycleLogEvent) -> None:
        if event.job_id is None and event.kind not in (
            EventKind.QUEUE_PAUSED,
            EventKind.QUEUE_RESUMED,
        ):
            return  # the backend's own states are for `worker` and `doctor`
        parts = describe(event, self.images_of, self.tally.tag(event.job_id), self.pool)
        if parts is not None:
            out.line(*parts)

    def refresh(self, active: ActiveStage | None) -> None:
        pass


class LiveView:
    """A terminal: a bar of this run's jobs, one of the active stage's steps, and a line per
    job start and end printed above them."""

    def __init__(self, tally: Tally, images_of: ImagesOf) -> None:
        self.tally = tally
        self.images_of = images_of
        self.progress = Progress(
            TextColumn("{task.description}", markup=False),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[detail]}", markup=False),
            console=out.console(),
        )
        self.jobs_task: TaskID = self.progress.add_task("your jobs", total=tally.total, detail="")
        self.step_task: TaskID = self.progress.add_task("waiting", total=1, detail="")

    @contextmanager
    def showing(self) -> Iterator[None]:
        with Live(self.progress, console=out.console(), refresh_per_second=8):
            self.refresh(None)
            yield
            self.refresh(None)

    def event(self, event: JobLifecycleLogEvent) -> None:
        if event.kind in (EventKind.JOB_STARTED, *FINISHED_KINDS, EventKind.QUEUE_PAUSED):
            parts = describe(event, self.images_of, self.tally.tag(event.job_id))
            if parts is not None:
                out.line(*parts)  # above the bars

    def refresh(self, active: ActiveStage | None) -> None:
        self.progress.update(self.jobs_task, completed=self.tally.done)
        if active is None or active.stage is None:
            left = self.tally.ahead_left
            waiting = f"waiting: {left} job(s) ahead of yours" if left else "waiting"
            self.progress.update(self.step_task, description=waiting, detail="")
            return
        where = f"{active.job_id[:8]}{self.tally.tag(active.job_id)} {active.stage}"
        if active.image_index:
            where += f" image {active.image_index}/{active.total}"
        self.progress.update(
            self.step_task,
            description=where,
            total=max(active.steps, 1),
            completed=active.step,
            detail=f"ETA {active.eta:.0f}s" if active.eta else "",
        )
