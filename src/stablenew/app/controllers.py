"""The controllers: the one door through which the GUI, the CLI and the API act.

JobExecutionController turns intents into queue operations (and keeps the draft); the
PipelineController maps job lifecycles onto the app lifecycle IDLE, RUNNING, STOPPING, ERROR;
the BackendController is what a door may ask of the backend, and what the runner asks of it
between jobs (the crash-loop breaker included).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from stablenew import redact
from stablenew.app.queue_export import QueueExport, export_jobs, import_jobs
from stablenew.app.queue_snapshot import QueueSnapshot
from stablenew.app.state import AppState, Lifecycle
from stablenew.errors import BackendStartError, InputError
from stablenew.jobs.input_store import InputStore
from stablenew.jobs.job import Job
from stablenew.jobs.outcome import ErrorEnvelope
from stablenew.jobs.spec import JobSpec
from stablenew.jobs.status import BackendState, JobStatus
from stablenew.observe.events import (
    FINISHED_KINDS,
    EventBus,
    EventKind,
    JobLifecycleLogEvent,
    Subscriber,
)
from stablenew.observe.lifecycle import JobLifecycleLogger
from stablenew.queue.home import HomeLock, Owner
from stablenew.queue.runner import JobRunner
from stablenew.queue.store import FINISHED, Delivery, JobStore, Move, SortKey
from stablenew.webui.breaker import BreakerState
from stablenew.webui.client import WebUIClient
from stablenew.webui.process import WebUIProcessManager

QUEUE_KINDS = {
    EventKind.ADD_TO_QUEUE,
    EventKind.JOB_STARTED,
    EventKind.JOB_COMPLETED,
    EventKind.JOB_FAILED,
    EventKind.JOB_CANCELLED,
    EventKind.JOB_RECOVERED,
    EventKind.JOB_MOVED,
    EventKind.JOBS_REMOVED,
}


@dataclass(frozen=True)
class Page:
    """Some jobs of a listing, and how many there are in all."""

    jobs: list[Job]
    total: int
    offset: int

    @property
    def more(self) -> int:
        return max(0, self.total - self.offset - len(self.jobs))


@dataclass(frozen=True)
class KeyedPage:
    """Some jobs of a listing, how many there are in all, and where the next page begins
    (None: this is the last)."""

    jobs: list[Job]
    total: int
    next: SortKey | None


class JobExecutionController:
    def __init__(
        self, store: JobStore, bus: EventBus, state: AppState, output_root: Path | None = None
    ) -> None:
        self.store = store
        self.bus = bus
        self.state = state
        self.output_root = output_root  # where jobs submitted here write, unless they say
        self.runners: list[JobRunner] = []  # set when this process owns the home
        # The backend's names: specs in its spelling, or an InputError naming the unknown ones.
        self.validate: Callable[[Sequence[JobSpec]], list[JobSpec]] | None = None
        self.inputs: InputStore | None = None  # the home's input store, where it has one
        self.lifecycle = JobLifecycleLogger(bus)
        self.snapshot = QueueSnapshot(store, state, bus)
        self._draft: list[JobSpec] = []
        bus.subscribe(self._on_event)

    def close(self) -> None:
        self.snapshot.close()

    def subscribe(self, listener: Subscriber) -> Callable[[], None]:
        """Hear every event of this process (and, for a client, the owner's)."""
        return self.bus.subscribe(listener)

    # -- the draft ("Add to Job") -------------------------------------------------------------

    @property
    def draft(self) -> list[JobSpec]:
        return list(self._draft)

    def add_to_job(self, specs: Sequence[JobSpec], source: str = "gui") -> int:
        if not specs:
            self.lifecycle.log_add_to_job_noop(source, len(self._draft), "nothing to add")
            return len(self._draft)
        self._draft.extend(specs)
        self.lifecycle.log_add_to_job(source, len(self._draft), len(specs))
        return len(self._draft)

    def remove_from_draft(self, index: int) -> None:
        del self._draft[index]

    def clear_draft(self) -> None:
        self._draft.clear()

    def submit_draft(self, source: str = "gui") -> list[str]:
        if not self._draft:
            self.lifecycle.log_add_to_queue_failed(source, "the draft is empty; Add to Job first")
            return []
        ids = self.submit_many(self._draft, source=source)
        self._draft.clear()
        return ids

    # -- submitting ----------------------------------------------------------------------------

    def submit_pipeline_run(self, spec: JobSpec, priority: int = 0, source: str = "api") -> str:
        return self.submit_many([spec], priority, source)[0]

    def submit_many(
        self, specs: Iterable[JobSpec], priority: int | Sequence[int] = 0, source: str = "api"
    ) -> list[str]:
        """Queue jobs; each records the output root it was submitted with (absolute)."""
        specs = [self._rooted(s) for s in specs]
        try:
            specs = self.check(specs)
            ahead = self.store.count([JobStatus.QUEUED, JobStatus.RUNNING])
            ids = self.store.submit_many(specs, priority, source=source)
        except Exception as exc:
            self.lifecycle.log_add_to_queue_failed(source, str(exc))
            raise
        self.lifecycle.log_add_to_queue(source, ids, ahead)
        self._wake()
        return ids

    def check(self, specs: Sequence[JobSpec]) -> list[JobSpec]:
        """What every way of queueing or changing a job goes through: the specs with their
        names as the backend spells them, or an InputError naming the ones it does not have
        (or a setting the job's chain would ignore)."""
        ignored = list(dict.fromkeys(p for spec in specs for p in spec.ignored()))
        if ignored:
            raise InputError("; ".join(ignored) + "; it would be ignored, so nothing was queued")
        return list(specs) if self.validate is None else self.validate(specs)

    def _rooted(self, spec: JobSpec) -> JobSpec:
        if spec.output.root is not None:
            root = Path(spec.output.root)
            if root.is_absolute():
                return spec
        else:
            if self.output_root is None:
                return spec
            root = self.output_root
        output = spec.output.model_copy(update={"root": str(root.absolute())})
        return spec.model_copy(update={"output": output})

    # -- one job -------------------------------------------------------------------------------

    def cancel_job(self, job_id: str, source: str = "api") -> JobStatus:
        """A queued job is CANCELLED at once; a running one is signalled and ends CANCELLED
        shortly; a finished one is left as it is. Returns the status the job had before, which
        says which of the three happened."""
        before, event = self.store.cancel(job_id, source)
        if event is not None:
            self.bus.publish(event)
        elif before == JobStatus.RUNNING:  # at once here; another process's runner polls the store
            for runner in self.runners:
                runner.cancel(job_id)
        return before

    def cancel_all_pending(self, source: str = "api") -> int:
        """Cancel every queued job (the running one goes on); returns how many."""
        events = self.store.cancel_all_pending(source)
        for event in events[-50:]:  # the store's log has all of them; the window needs few
            self.bus.publish(event)
        self.refresh_queue()
        return len(events)

    def get_job_status(self, job_id: str) -> JobStatus:
        return self.store.get(job_id).status

    def get_job(self, job_id: str) -> Job:
        return self.store.get(job_id)

    def find(self, prefix: str) -> str:
        """A full job id from a unique prefix."""
        return self.store.find(prefix)

    def retry(self, job_id: str, source: str = "gui") -> str:
        new_id = self.store.retry(job_id, source)
        self.lifecycle.log_add_to_queue(source, [new_id])
        self._wake()
        return new_id

    def error_of(self, job_id: str) -> ErrorEnvelope | None:
        return self.store.get(job_id).error

    def edit(self, job_id: str, spec: JobSpec, source: str = "api") -> JobLifecycleLogEvent:
        """Change a QUEUED job (refused once it runs); recorded as an event."""
        [checked] = self.check([self._rooted(spec)])
        event = self.store.edit(job_id, checked, source)
        self.bus.publish(event)
        self.refresh_queue()
        return event

    def retry_with(self, job_id: str, spec: JobSpec, source: str = "api") -> str:
        """Retry a FAILED or CANCELLED job with changes, as a new job linked to it."""
        [checked] = self.check([self._rooted(spec)])
        new_id = self.store.retry(job_id, source, spec=checked)
        self.lifecycle.log_add_to_queue(source, [new_id])
        self._wake()
        return new_id

    def export_queue(self) -> QueueExport:
        """The pending queue (specs, priorities, order), to import here or elsewhere."""
        root = str(self.output_root.absolute()) if self.output_root is not None else None
        return export_jobs(self.store.pending(), self.inputs, root)

    def import_queue(self, exported: QueueExport, source: str = "api") -> list[str]:
        """Queue what an export holds, in its order; all of it is validated (it is typed, and
        every input image is here or in the export) before anything is queued."""
        jobs = import_jobs(exported, self.inputs)
        return self.submit_many([j.spec for j in jobs], [j.priority for j in jobs], source)

    # -- the queue -----------------------------------------------------------------------------

    def move(self, job_id: str, where: Move, source: str = "api") -> None:
        self._published(self.store.move(job_id, where, source))

    def remove(self, job_id: str, source: str = "api") -> None:
        self._published(self.store.remove(job_id, source))

    def remove_where(self, statuses: Iterable[JobStatus], source: str = "api") -> int:
        removed, event = self.store.remove_where(statuses, source)
        self._published(event)
        return removed

    def clear_finished(self, source: str = "api") -> int:
        removed, event = self.store.clear_finished(source)
        self._published(event)
        return removed

    def _published(self, event: JobLifecycleLogEvent | None) -> None:
        """Tell everyone a change the store recorded (None: nothing changed)."""
        if event is not None:
            self.bus.publish(event)
        self.refresh_queue()

    def pause(self, reason: str = "paused by the user", source: str = "api") -> None:
        self.bus.publish(self.store.pause(reason, source))

    def resume(self, source: str = "api") -> bool:
        """Resume; False when the queue was not paused."""
        event = self.store.resume(source)
        if event is not None:
            self.bus.publish(event)
        self._wake()
        return event is not None

    def paused(self) -> str | None:
        return self.store.paused()

    def list_jobs(
        self,
        statuses: Iterable[JobStatus] | None = None,
        text: str | None = None,
        limit: int = 1000,
        offset: int = 0,
    ) -> list[Job]:
        return self.store.list_jobs(statuses, text, limit, offset)

    def page(
        self,
        statuses: Iterable[JobStatus] | None = None,
        text: str | None = None,
        limit: int = 50,
        offset: int = 0,
        history: bool = False,
    ) -> Page:
        """One page of the queue (running, queued, finished) or of the history."""
        wanted = list(statuses) if statuses is not None else None
        if history:
            finished = [JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED]
            wanted = [s for s in (wanted or finished) if s in finished]
            jobs = self.store.history(wanted, text, limit, offset)
        else:
            jobs = self.store.list_jobs(wanted, text, limit, offset)
        return Page(jobs, self.store.count(wanted, text), offset)

    def page_after(
        self,
        statuses: Iterable[JobStatus] | None = None,
        text: str | None = None,
        limit: int = 50,
        after: SortKey | None = None,
        history: bool = False,
    ) -> KeyedPage:
        """One page of a listing that begins after the job with sort key `after` (the API's
        cursor): stable while jobs come, go and run between pages."""
        jobs, last = self.store.page_after(statuses, text, limit, after, history)
        wanted = statuses
        if history:
            wanted = [s for s in (statuses or FINISHED) if s in FINISHED]
        return KeyedPage(jobs, self.store.count(wanted, text), last)

    def history(
        self, statuses: Iterable[JobStatus] | None = None, text: str | None = None
    ) -> list[Job]:
        return self.store.history(statuses, text)

    def events_since(
        self, seq: int, job_id: str | None = None, limit: int = 10_000
    ) -> list[JobLifecycleLogEvent]:
        """The store's lifecycle log after `seq` (the owner's and every client's)."""
        return self.store.events_since(seq, limit, job_id)

    def last_seq(self) -> int:
        return self.store.last_seq()

    def refresh_queue(self) -> None:
        self.snapshot.refresh()

    def _wake(self) -> None:
        for runner in self.runners:
            runner.wake()

    def _on_event(self, event: JobLifecycleLogEvent) -> None:
        if event.kind in (EventKind.QUEUE_PAUSED, EventKind.QUEUE_RESUMED):
            self.snapshot.refresh()  # rare, and the user must see it at once
        elif event.kind in QUEUE_KINDS:
            self.snapshot.request()

    def report(self, message: str, source: str = "gui") -> None:
        """A door's own problem (a click whose work failed) into the trail, as a warning."""
        self.bus.emit(EventKind.WARNING, message, source=source)

    # -- for the HTTP API (issue 17) -----------------------------------------------------------

    def count(self, statuses: Iterable[JobStatus] | None = None, text: str | None = None) -> int:
        """How many jobs are in these statuses (all of them: None)."""
        return self.store.count(statuses, text)

    def pending(self) -> list[Job]:
        """Every QUEUED job, in the order they will run."""
        return self.store.pending()

    def move_to(self, job_id: str, index: int, source: str = "api") -> None:
        """Move a queued job to `index` in run order (0: next; past the end: last)."""
        self._published(self.store.move(job_id, index, source))

    def outbox_add(self, deliveries: Sequence[tuple[str, str, str]], keep: int = 10_000) -> None:
        """Queue webhook deliveries (url, event, body) durably; bounded per URL."""
        self.store.outbox_add(deliveries, keep)

    def outbox_due(self, now: float, limit: int = 20, skip: Collection[str] = ()) -> list[Delivery]:
        """Pending deliveries due by `now`, oldest first, leaving out the URLs in `skip`."""
        return self.store.outbox_due(now, limit, skip)

    def outbox_next_at(self, skip: Collection[str] = ()) -> float | None:
        return self.store.outbox_next_at(skip)

    def log_id(self) -> str:
        """This database's event log, told apart from an earlier one at the same path."""
        return self.store.log_id()

    def outbox_result(
        self, delivery_id: int, *, delivered: bool, error: str = "", retry_at: float | None = None
    ) -> None:
        self.store.outbox_result(delivery_id, delivered=delivered, error=error, retry_at=retry_at)

    def outbox_counts(self) -> dict[str, int]:
        """Webhook deliveries: delivered, failed (given up) and pending."""
        return self.store.outbox_counts()


ALLOWED = {
    Lifecycle.IDLE: {Lifecycle.RUNNING, Lifecycle.ERROR},
    Lifecycle.RUNNING: {Lifecycle.STOPPING, Lifecycle.IDLE, Lifecycle.ERROR},
    Lifecycle.STOPPING: {Lifecycle.IDLE, Lifecycle.ERROR},
    Lifecycle.ERROR: {Lifecycle.IDLE},
}

LIFECYCLE_OF_STATUS = {
    JobStatus.QUEUED: Lifecycle.IDLE,
    JobStatus.RUNNING: Lifecycle.RUNNING,
    JobStatus.COMPLETED: Lifecycle.IDLE,
    JobStatus.CANCELLED: Lifecycle.IDLE,
    JobStatus.FAILED: Lifecycle.ERROR,
}


class PipelineController:
    def __init__(self, state: AppState, bus: EventBus, jobs: JobExecutionController) -> None:
        self.state = state
        self.bus = bus
        self.jobs = jobs
        # The job the doors show as running. In a pool several run at once: the first one
        # started stays the active one until it ends, then the next still running takes over.
        self.active_job_id: str | None = None
        self._running: dict[str, None] = {}  # jobs running now, in the order they started
        bus.subscribe(self._on_event)

    @property
    def lifecycle(self) -> Lifecycle:
        return self.state.lifecycle

    def transition(self, target: Lifecycle) -> bool:
        current = self.state.lifecycle
        if target == current:
            return True
        if target not in ALLOWED[current]:
            self.bus.emit(
                EventKind.WARNING,
                f"lifecycle transition {current} -> {target} refused",
                source="pipeline_controller",
                job_id=self.active_job_id,
            )
            return False
        self.state.set_lifecycle(target, self.active_job_id if target != Lifecycle.IDLE else None)
        self.bus.emit(
            EventKind.LIFECYCLE,
            f"{current} -> {target}",
            source="pipeline_controller",
            job_id=self.active_job_id,
        )
        return True

    def on_job_status(self, job_id: str, status: JobStatus, reason: str | None = None) -> None:
        target = LIFECYCLE_OF_STATUS[status]
        if status == JobStatus.RUNNING:
            self._running[job_id] = None
            if self.active_job_id is not None and self.active_job_id in self._running:
                return  # another backend's job: the active one is still shown
            self.active_job_id = job_id
            if self.state.lifecycle == Lifecycle.ERROR:
                self.transition(Lifecycle.IDLE)  # a new job: the last one's error is behind us
        elif job_id not in self._running and job_id != self.active_job_id:
            return  # a queued job cancelled: the app's lifecycle is not about it
        else:
            self._running.pop(job_id, None)
        if status == JobStatus.FAILED:
            self.state.set_error(job_id, reason)
        elif status == JobStatus.RUNNING:
            self.state.set_error(None, None)
        if job_id != self.active_job_id:
            return  # another backend's job ended: the active one runs on
        if status != JobStatus.RUNNING and self._running:
            # The active one ended while another runs: that one is shown now.
            self.active_job_id = next(iter(self._running))
            self.state.set_lifecycle(Lifecycle.RUNNING, self.active_job_id)
            return
        if self.transition(target) and status.finished:
            self.active_job_id = None

    @property
    def running_jobs(self) -> tuple[str, ...]:
        """Every job running now (several in a pool), in the order they started."""
        return tuple(self._running)

    def request_stop(self, job_id: str | None = None) -> bool:
        """Stop: cancel `job_id` (the one a door shows), else the active job; stopping the
        active job takes the lifecycle RUNNING -> STOPPING -> IDLE."""
        job_id = job_id or self.active_job_id
        if job_id is None or job_id not in {*self._running, self.active_job_id}:
            return False
        if job_id == self.active_job_id and not self.transition(Lifecycle.STOPPING):
            return False
        self.jobs.cancel_job(job_id, source="gui")
        return True

    def acknowledge_error(self) -> bool:
        self.state.set_error(None, None)
        return self.transition(Lifecycle.IDLE)

    def _on_event(self, event: JobLifecycleLogEvent) -> None:
        if event.job_id is None or event.source != "runner":
            return
        if event.kind == EventKind.JOB_STARTED:
            self.on_job_status(event.job_id, JobStatus.RUNNING)
        elif event.kind in FINISHED_KINDS and event.status is not None:
            reason = getattr(event.data, "reason", None)
            self.on_job_status(event.job_id, event.status, reason)
        elif event.kind == EventKind.JOB_RECOVERED and event.job_id == self.active_job_id:
            self.on_job_status(event.job_id, JobStatus.QUEUED)


@dataclass(frozen=True)
class BackendStatus:
    """One backend of the pool as a door shows it (a `user:pass@` in its URL masked)."""

    name: str
    labels: list[str]
    state: BackendState
    url: str | None
    managed: bool
    loaded_model: str | None  # the checkpoint it has loaded (its title), once known
    current_job: str | None  # the job it runs now
    held: str | None  # set aside by its crash-loop breaker: why
    restarts: int

    def __post_init__(self) -> None:
        if self.url:  # once here, for every door that shows it
            object.__setattr__(self, "url", redact.text(self.url))


@dataclass
class BackendRuntime:
    """What the owner's pool knows of a backend while it runs jobs (unset for a client)."""

    loaded_model: Callable[[], str | None] = lambda: None
    current_job: Callable[[], str | None] = lambda: None
    held: Callable[[], str | None] = lambda: None
    release: Callable[[], None] = lambda: None  # the user started it again: back in the pool


class BackendController:
    """What a door may ask of the backend (start, restart, its output, its lists), and what the
    runner asks between jobs (`queue.runner.BackendGate`)."""

    def __init__(
        self,
        manager: WebUIProcessManager,
        client: Callable[[], WebUIClient],
        home: HomeLock,
        name: str = "default",
        labels: frozenset[str] = frozenset(),
    ) -> None:
        self._manager = manager
        self._client = client
        self._home = home
        self.name = name  # in a pool, the backend's name ("default" for a single one)
        self.labels = labels
        self.runtime = BackendRuntime()  # filled in by the pool when this process runs jobs

    def status(self) -> BackendStatus:
        return BackendStatus(
            name=self.name,
            labels=sorted(self.labels),
            state=self.state,
            url=self.url,
            managed=self.managed,
            loaded_model=self.runtime.loaded_model(),
            current_job=self.runtime.current_job(),
            held=self.runtime.held(),
            restarts=self.restarts,
        )

    @property
    def state(self) -> BackendState:
        return self._manager.state

    @property
    def url(self) -> str | None:
        return self._manager.known_url if self._manager.state == BackendState.READY else None

    @property
    def shown_url(self) -> str | None:
        """The URL as a door may show it: a `user:pass@` masked."""
        return redact.text(self.url) if self.url else None

    @property
    def meant_url(self) -> str | None:
        """Where the backend is meant to answer, up or not (masked): a door names it when
        it did not start."""
        url = self._manager.known_url or self._manager.config.url
        return redact.text(url) if url else None

    @property
    def managed(self) -> bool:
        return self._manager.managed

    @property
    def restarts(self) -> int:
        """Restarts of the managed backend since this process started it."""
        return self._manager.restarts

    def owner(self) -> Owner | None:
        return self._home.owner()

    def start(self, timeout: float | None = None) -> str:
        """Start it (a user's Start: a crash-loop breaker is reset first)."""
        self._manager.reset_breaker("started by the user")
        self.runtime.release()
        return self._manager.start(timeout)

    def restart(self) -> str:
        self._manager.reset_breaker("restarted by the user")
        self.runtime.release()
        return self._manager.restart_and_wait_ready()

    def stop(self, grace: float = 5.0) -> None:
        self._manager.stop(grace)

    def tail(self, lines: int = 200) -> dict[str, str]:
        return self._manager.get_tail_logs(lines)

    def client(self) -> WebUIClient:
        """A client for the backend's read-only lists (doctor, the compose lists)."""
        return self._client()

    def choices(self) -> dict[str, list[str]]:
        """Models, samplers, schedulers and upscalers, for the compose lists."""
        client = self._client()
        return {
            "model": [str(m["model_name"]) for m in client.sd_models()],
            "sampler": [str(s["name"]) for s in client.samplers()],
            "scheduler": [str(s["label"]) for s in client.schedulers()],
            "upscale.upscaler": [str(u["name"]) for u in client.upscalers()],
        }

    # -- the runner's gate ---------------------------------------------------------------------

    def ensure_ready(self) -> str | None:
        if self._manager.state == BackendState.READY and (
            not self._manager.managed or self._manager.is_process_alive()
        ):
            return None
        try:
            self._manager.start()
        except BackendStartError as exc:
            return str(exc).splitlines()[0]
        return None

    def trial_due(self) -> bool:
        return self._manager.breaker.try_half_open()

    def resumed_by_user(self) -> None:
        self._manager.reset_breaker("the user resumed the queue")

    def job_completed(self) -> None:
        self._manager.breaker.job_completed()

    @property
    def breaker(self) -> BreakerState:
        return self._manager.breaker.state

    def reference_version(self) -> str | None:
        """The version of StableNew's reference backend when that is what answers (it makes
        simulated images), None for a real A1111-compatible backend. Asks the backend: call it
        off a GUI thread."""
        return self._client().reference_version()
