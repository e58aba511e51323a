"""The controllers: the one door through which the GUI, the CLI and any API act.

JobExecutionController turns intents into queue operations (and keeps the draft); the
PipelineController maps job lifecycles onto the app lifecycle IDLE, RUNNING, STOPPING, ERROR.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

from stablenew.app.queue_snapshot import QueueSnapshot
from stablenew.app.state import AppState, Lifecycle
from stablenew.jobs.job import Job, JobStatus
from stablenew.jobs.spec import JobSpec
from stablenew.observe.events import EventBus, EventKind, JobLifecycleLogEvent
from stablenew.observe.lifecycle import JobLifecycleLogger
from stablenew.queue.runner import JobRunner
from stablenew.queue.store import JobStore, Move
from stablenew.webui.client import WebUIClient
from stablenew.webui.process import BackendState, WebUIProcessManager

QUEUE_KINDS = {
    EventKind.ADD_TO_QUEUE,
    EventKind.JOB_STARTED,
    EventKind.JOB_COMPLETED,
    EventKind.JOB_FAILED,
    EventKind.JOB_CANCELLED,
    EventKind.JOB_RECOVERED,
}


class JobExecutionController:
    def __init__(
        self, store: JobStore, bus: EventBus, state: AppState, runner: JobRunner | None = None
    ) -> None:
        self.store = store
        self.bus = bus
        self.state = state
        self.runner = runner
        self.lifecycle = JobLifecycleLogger(bus)
        self.snapshot = QueueSnapshot(store, state, bus)
        self._draft: list[JobSpec] = []
        bus.subscribe(self._on_event)

    def close(self) -> None:
        self.snapshot.close()

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
        self, specs: Iterable[JobSpec], priority: int = 0, source: str = "api"
    ) -> list[str]:
        specs = list(specs)
        try:
            ids = self.store.submit_many(specs, priority)
        except Exception as exc:
            self.lifecycle.log_add_to_queue_failed(source, str(exc))
            raise
        self.lifecycle.log_add_to_queue(source, ids)
        self._wake()
        return ids

    # -- one job -------------------------------------------------------------------------------

    def cancel_job(self, job_id: str) -> JobStatus:
        """A queued job is CANCELLED at once; a running one is signalled and ends CANCELLED
        shortly (RUNNING is returned meanwhile); a finished one is left as it is."""
        before = self.store.cancel(job_id)
        if before == JobStatus.QUEUED:
            self.lifecycle.log_job_finished(job_id, JobStatus.CANCELLED, "Cancelled while queued.")
            return JobStatus.CANCELLED
        if before == JobStatus.RUNNING and self.runner is not None:
            self.runner.cancel(job_id)  # at once here; another process's runner polls the store
        return before

    def get_job_status(self, job_id: str) -> JobStatus:
        return self.store.get(job_id).status

    def get_job(self, job_id: str) -> Job:
        return self.store.get(job_id)

    def retry(self, job_id: str, source: str = "gui") -> str:
        new_id = self.store.retry(job_id)
        self.lifecycle.log_add_to_queue(source, [new_id])
        self._wake()
        return new_id

    # -- the queue -----------------------------------------------------------------------------

    def move(self, job_id: str, where: Move) -> None:
        self.store.move(job_id, where)
        self.refresh_queue()

    def remove(self, job_id: str) -> None:
        self.store.remove(job_id)
        self.refresh_queue()

    def clear_finished(self) -> int:
        removed = self.store.clear_finished()
        self.refresh_queue()
        return removed

    def pause(self, reason: str = "paused by the user") -> None:
        self.store.pause(reason)
        self.bus.emit(EventKind.QUEUE_PAUSED, f"Queue paused: {reason}", source="controller")

    def resume(self) -> None:
        self.store.resume()
        self.bus.emit(EventKind.QUEUE_RESUMED, "Queue resumed.", source="controller")
        self._wake()

    def list_jobs(
        self, statuses: Iterable[JobStatus] | None = None, text: str | None = None
    ) -> list[Job]:
        return self.store.list_jobs(statuses, text)

    def history(
        self, statuses: Iterable[JobStatus] | None = None, text: str | None = None
    ) -> list[Job]:
        return self.store.history(statuses, text)

    def refresh_queue(self) -> None:
        self.snapshot.refresh()

    def _wake(self) -> None:
        if self.runner is not None:
            self.runner.wake()

    def _on_event(self, event: JobLifecycleLogEvent) -> None:
        if event.kind in (EventKind.QUEUE_PAUSED, EventKind.QUEUE_RESUMED):
            self.snapshot.refresh()  # rare, and the user must see it at once
        elif event.kind in QUEUE_KINDS:
            self.snapshot.request()


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

STATUS_OF_KIND = {
    EventKind.JOB_STARTED: JobStatus.RUNNING,
    EventKind.JOB_COMPLETED: JobStatus.COMPLETED,
    EventKind.JOB_CANCELLED: JobStatus.CANCELLED,
    EventKind.JOB_FAILED: JobStatus.FAILED,
}


class PipelineController:
    def __init__(self, state: AppState, bus: EventBus, jobs: JobExecutionController) -> None:
        self.state = state
        self.bus = bus
        self.jobs = jobs
        self.active_job_id: str | None = None
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

    def on_job_status(self, job_id: str, status: JobStatus, error: dict | None = None) -> None:
        target = LIFECYCLE_OF_STATUS[status]
        if status == JobStatus.RUNNING:
            self.active_job_id = job_id
            if self.state.lifecycle == Lifecycle.ERROR:
                self.transition(Lifecycle.IDLE)
        elif job_id != self.active_job_id:
            return  # a queued job cancelled: the app's lifecycle is not about it
        if status == JobStatus.FAILED:
            self.state.set_error(error)
        if self.transition(target) and status.finished:
            self.active_job_id = None

    def request_stop(self) -> bool:
        """Stop: cancel the active job; the lifecycle goes RUNNING -> STOPPING -> IDLE."""
        job_id = self.active_job_id
        if job_id is None or not self.transition(Lifecycle.STOPPING):
            return False
        self.jobs.cancel_job(job_id)
        return True

    def acknowledge_error(self) -> bool:
        self.state.set_error(None)
        return self.transition(Lifecycle.IDLE)

    def _on_event(self, event: JobLifecycleLogEvent) -> None:
        status = STATUS_OF_KIND.get(event.kind)
        if status is not None and event.job_id is not None and event.source == "runner":
            error = None
            if status == JobStatus.FAILED:
                error = {"message": event.message, "job_id": event.job_id}
            self.on_job_status(event.job_id, status, error)


class BackendController:
    """What a user interface may ask of the backend: start, restart, its output, its lists."""

    def __init__(self, manager: WebUIProcessManager, client: Callable[[], WebUIClient]) -> None:
        self.manager = manager
        self._client = client

    @property
    def state(self) -> BackendState:
        return self.manager.state

    @property
    def url(self) -> str | None:
        return self.manager.url if self.manager.state == BackendState.READY else None

    def start(self) -> str:
        return self.manager.start()

    def restart(self) -> str:
        return self.manager.restart_and_wait_ready()

    def tail(self, lines: int = 200) -> dict[str, str]:
        return self.manager.get_tail_logs(lines)

    def choices(self) -> dict[str, list[str]]:
        """Models, samplers, schedulers and upscalers, for the compose lists."""
        client = self._client()
        return {
            "model": [str(m["model_name"]) for m in client.sd_models()],
            "sampler": [str(s["name"]) for s in client.samplers()],
            "scheduler": [str(s["label"]) for s in client.schedulers()],
            "upscale.upscaler": [str(u["name"]) for u in client.upscalers()],
        }
