"""Controllers + JobRunner + a real store: intents, lifecycle mapping, cancel, stop, no cascade."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from stablenew.app.controllers import JobExecutionController, PipelineController
from stablenew.app.state import AppState, Lifecycle
from stablenew.jobs.cancel import CancelToken
from stablenew.jobs.execution import CheckpointSaver
from stablenew.jobs.job import Job
from stablenew.jobs.outcome import Checkpoint, ErrorEnvelope, JobOutcome, JobResult
from stablenew.jobs.spec import JobSpec
from stablenew.jobs.status import FailureReason, JobStatus
from stablenew.observe.events import EventBus, EventKind
from stablenew.queue.runner import JobRunner
from stablenew.queue.store import JobStore
from tests.helpers import Waiter


class Gate:
    """The backend as the runner sees it between jobs."""

    def __init__(self) -> None:
        self.why: str | None = None  # None: ready
        self.trial = False
        self.resumed = 0
        self.completed = 0

    def ensure_ready(self) -> str | None:
        return self.why

    def trial_due(self) -> bool:
        due, self.trial = self.trial, False
        return due

    def resumed_by_user(self) -> None:
        self.resumed += 1

    def job_completed(self) -> None:
        self.completed += 1

    def hold(self, reason: str) -> bool:
        return True  # a pool of one: the queue pauses

    def held(self) -> bool:
        return False


def failed(message: str, reason: FailureReason | None = None) -> JobOutcome:
    return JobOutcome.failed(ErrorEnvelope(type="StageFailed", message=message, reason=reason))


@dataclass
class App:
    store: JobStore
    bus: EventBus
    state: AppState
    runner: JobRunner
    jobs: JobExecutionController
    pipeline: PipelineController
    waiter: Waiter
    started: threading.Event
    release: threading.Event
    gate: Gate


@pytest.fixture
def app(tmp_path: Path) -> Iterator[App]:
    started, release = threading.Event(), threading.Event()
    gate = Gate()

    def execute(job: Job, token: CancelToken, saver: CheckpointSaver) -> JobOutcome:
        prompt = job.spec.prompt
        if prompt.startswith("block"):
            started.set()
            token.on_cancel(release.set)
            release.wait(20)
            if token.is_cancelled():
                result = JobResult(images=["kept.png"])
                return JobOutcome(status=JobStatus.CANCELLED, result=result)
        if prompt.startswith("fail"):
            return failed("upscale failed: HTTP 500")
        if prompt.startswith("disk full"):
            return failed("cannot write", FailureReason.OUTPUT_FULL)
        if prompt.startswith("read-only"):
            return failed("cannot write", FailureReason.OUTPUT_UNWRITABLE)
        if prompt.startswith("backend dies"):
            gate.why = "the backend did not come back within 60s"
            return failed("backend gone", FailureReason.BACKEND_UNREACHABLE)
        if prompt.startswith("crash loop"):
            return JobOutcome(status=JobStatus.QUEUED, error=failed("crash loop: x").error)
        if prompt.startswith("bug"):
            raise RuntimeError("a bug in the pipeline")
        saver.save(Checkpoint(run_dir="/r", seeds=[1], stages_done=["txt2img"]))
        return JobOutcome(status=JobStatus.COMPLETED, result=JobResult(images=["a.png", "b.png"]))

    bus, state = EventBus(), AppState()
    bus.subscribe(state.on_event)
    store = JobStore(tmp_path / "jobs.db")
    runner = JobRunner(store, execute, bus, gate=gate, max_attempts=3, poll_interval=0.05)
    jobs = JobExecutionController(store, bus, state)
    jobs.runners = [runner]
    pipeline = PipelineController(state, bus, jobs)
    waiter = Waiter(bus)  # subscribed last: when it sees an event, the controllers have too
    yield App(store, bus, state, runner, jobs, pipeline, waiter, started, release, gate)
    release.set()
    assert runner.stop(10)


def test_submit_runs_to_completion_with_the_trail(app: App) -> None:
    app.runner.start()
    app.jobs.add_to_job([], source="gui")
    app.jobs.add_to_job([JobSpec(prompt="a"), JobSpec(prompt="b")], source="gui")
    ids = app.jobs.submit_draft(source="gui")
    assert len(ids) == 2 and app.jobs.draft == []
    app.waiter.wait(EventKind.JOB_COMPLETED, ids[1])
    assert [app.jobs.get_job_status(i) for i in ids] == [JobStatus.COMPLETED] * 2
    checkpoint = app.store.get(ids[0]).checkpoint
    assert checkpoint is not None and checkpoint.stages_done == ["txt2img"]
    kinds = app.waiter.kinds()
    assert kinds[:3] == ["add_to_job_noop", "add_to_job", "add_to_queue"]
    for job_id in ids:
        assert [k for k in app.waiter.kinds(job_id) if k.startswith("job_")] == [
            "job_started",
            "job_completed",
        ]
    assert app.state.lifecycle == Lifecycle.IDLE
    assert [e.kind for e in app.state.recent_events()] == [e.kind for e in app.waiter.events]
    assert app.jobs.submit_draft() == []
    assert app.waiter.events[-1].kind == EventKind.ADD_TO_QUEUE_FAILED


def test_failure_maps_to_error_then_next_job_runs(app: App) -> None:
    app.runner.start()
    bad = app.jobs.submit_pipeline_run(JobSpec(prompt="fail me"))
    app.waiter.wait(EventKind.JOB_FAILED, bad)
    assert app.state.lifecycle == Lifecycle.ERROR
    error = app.store.get(bad).error
    assert error is not None and error.message == "upscale failed: HTTP 500"
    assert app.state.failure is not None and "HTTP 500" in app.state.failure.reason
    ok = app.jobs.submit_pipeline_run(JobSpec(prompt="fine"))
    app.waiter.wait(EventKind.JOB_COMPLETED, ok)
    assert app.state.lifecycle == Lifecycle.IDLE
    lifecycle = [e.message for e in app.waiter.events if e.kind == EventKind.LIFECYCLE]
    assert lifecycle == [
        "IDLE -> RUNNING",
        "RUNNING -> ERROR",
        "ERROR -> IDLE",
        "IDLE -> RUNNING",
        "RUNNING -> IDLE",
    ]


def test_a_bug_in_execute_becomes_a_failed_job_with_envelope(app: App) -> None:
    app.runner.start()
    job_id = app.jobs.submit_pipeline_run(JobSpec(prompt="bug"))
    app.waiter.wait(EventKind.JOB_FAILED, job_id)
    error = app.store.get(job_id).error
    assert error is not None and error.type == "RuntimeError"
    assert "a bug in the pipeline" in error.message


def test_cancel_queued_and_running(app: App) -> None:
    app.runner.start()
    running = app.jobs.submit_pipeline_run(JobSpec(prompt="block"))
    queued = app.jobs.submit_pipeline_run(JobSpec(prompt="later"))
    assert app.started.wait(10)
    assert app.jobs.cancel_job(queued) == JobStatus.QUEUED  # what it was: cancelled now
    assert app.jobs.get_job_status(queued) == JobStatus.CANCELLED
    assert app.pipeline.request_stop()
    assert app.state.lifecycle == Lifecycle.STOPPING
    app.waiter.wait(EventKind.JOB_CANCELLED, running)
    job = app.store.get(running)
    assert job.status == JobStatus.CANCELLED and job.result.images == ["kept.png"]
    assert app.state.lifecycle == Lifecycle.IDLE
    assert app.jobs.cancel_job(running) == JobStatus.CANCELLED  # already finished: no-op


def test_cancel_from_another_process_reaches_the_runner(app: App, tmp_path: Path) -> None:
    app.runner.start()
    job_id = app.jobs.submit_pipeline_run(JobSpec(prompt="block"))
    assert app.started.wait(10)
    JobStore(tmp_path / "jobs.db").cancel(job_id)  # as `stablenew queue cancel` would
    app.waiter.wait(EventKind.JOB_CANCELLED, job_id)


def test_stop_is_bounded_and_requeues_the_running_job(app: App) -> None:
    app.runner.start()
    job_id = app.jobs.submit_pipeline_run(JobSpec(prompt="block"))
    assert app.started.wait(10)
    assert app.runner.stop(10)
    assert not app.runner.alive
    job = app.store.get(job_id)
    assert job.status == JobStatus.QUEUED and job.attempts == 0
    assert not [t for t in threading.enumerate() if t.name in ("job-runner", "job-heartbeat")]


def test_backend_down_waits_and_pauses_instead_of_cascading(app: App) -> None:
    app.runner.start()
    dead = app.jobs.submit_pipeline_run(JobSpec(prompt="backend dies"))
    waiting = app.jobs.submit_pipeline_run(JobSpec(prompt="next"))
    app.waiter.wait(EventKind.QUEUE_PAUSED)
    assert app.jobs.get_job_status(dead) == JobStatus.FAILED
    assert app.jobs.get_job_status(waiting) == JobStatus.QUEUED  # not failed in a cascade
    assert app.jobs.paused() is not None and "did not come back" in app.jobs.paused()  # type: ignore[operator]
    app.gate.why = None
    app.jobs.resume()
    app.waiter.wait(EventKind.JOB_COMPLETED, waiting)
    assert app.gate.resumed == 1  # the user's resume reset the breaker


def test_a_crash_loop_gives_the_job_back_and_pauses(app: App) -> None:
    app.runner.start()
    looping = app.jobs.submit_pipeline_run(JobSpec(prompt="crash loop"))
    others = app.jobs.submit_many([JobSpec(prompt="next"), JobSpec(prompt="after")])
    app.waiter.wait(EventKind.QUEUE_PAUSED)
    assert app.jobs.get_job_status(looping) == JobStatus.QUEUED  # not the job's fault
    assert app.store.get(looping).attempts == 0
    assert [app.jobs.get_job_status(i) for i in others] == [JobStatus.QUEUED] * 2
    assert "crash loop: x" in (app.jobs.paused() or "")
    assert [k for k in app.waiter.kinds(looping) if k.startswith("job_")][-1] == "job_recovered"


def test_half_open_trial_resumes_the_queue_it_paused(app: App) -> None:
    app.runner.start()
    app.gate.why = "crash loop: the backend keeps dying"
    job_id = app.jobs.submit_pipeline_run(JobSpec(prompt="fine"))
    app.waiter.wait(EventKind.QUEUE_PAUSED)
    assert app.jobs.get_job_status(job_id) == JobStatus.QUEUED
    app.gate.why = None
    app.gate.trial = True  # the cooldown is over: one trial
    app.waiter.wait(EventKind.JOB_COMPLETED, job_id)
    kinds = [k for k in app.waiter.kinds() if k != "lifecycle"]
    assert kinds[-3:] == ["queue_resumed", "job_started", "job_completed"]
    assert app.gate.resumed == 0  # a trial is not the user's resume


def test_two_jobs_failing_for_one_environmental_reason_pause_the_queue(app: App) -> None:
    app.runner.start()
    ids = app.jobs.submit_many(
        [
            JobSpec(prompt=p)
            for p in ("disk full 1", "read-only", "disk full 2", "disk full 3", "fine")
        ]
    )
    app.waiter.wait(EventKind.QUEUE_PAUSED)
    statuses = [app.jobs.get_job_status(i) for i in ids]
    # a different reason in between does not count: only 2 and 3 are "in a row"
    assert statuses == [JobStatus.FAILED] * 4 + [JobStatus.QUEUED]
    assert "2 jobs in a row failed because the output folder's disk is full" in (
        app.jobs.paused() or ""
    )


def test_an_ordinary_failure_between_resets_the_count(app: App) -> None:
    app.runner.start()
    ids = app.jobs.submit_many(
        [JobSpec(prompt=p) for p in ("disk full 1", "fail", "disk full 2", "fine")]
    )
    app.waiter.wait(EventKind.JOB_COMPLETED, ids[-1])
    assert app.jobs.paused() is None


@pytest.mark.parametrize(
    ("status", "lifecycle"),
    [
        (JobStatus.RUNNING, Lifecycle.RUNNING),
        (JobStatus.COMPLETED, Lifecycle.IDLE),
        (JobStatus.CANCELLED, Lifecycle.IDLE),
        (JobStatus.FAILED, Lifecycle.ERROR),
    ],
)
def test_status_to_lifecycle_mapping(status: JobStatus, lifecycle: Lifecycle) -> None:
    bus, state = EventBus(), AppState()
    pipeline = PipelineController(state, bus, jobs=None)  # type: ignore[arg-type]
    pipeline.on_job_status("j", JobStatus.RUNNING)
    pipeline.on_job_status("j", status)
    assert state.lifecycle == lifecycle


def test_invalid_transitions_are_refused_and_logged() -> None:
    bus, state = EventBus(), AppState()
    waiter = Waiter(bus)
    pipeline = PipelineController(state, bus, jobs=None)  # type: ignore[arg-type]
    assert not pipeline.transition(Lifecycle.STOPPING)
    assert state.lifecycle == Lifecycle.IDLE
    assert waiter.events[-1].kind == EventKind.WARNING
    assert "IDLE -> STOPPING refused" in waiter.events[-1].message
    pipeline.on_job_status("j", JobStatus.RUNNING)
    pipeline.on_job_status("j", JobStatus.FAILED)
    assert not pipeline.transition(Lifecycle.RUNNING)
    assert pipeline.acknowledge_error() and state.lifecycle == Lifecycle.IDLE
