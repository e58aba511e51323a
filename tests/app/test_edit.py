"""Changing what is queued: edit a QUEUED job (and only while queued), retry with changes,
export and import the pending queue."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from stablenew.app.controllers import JobExecutionController
from stablenew.app.intents import changed, parse_assignments
from stablenew.app.queue_export import QueueExport
from stablenew.app.state import AppState
from stablenew.errors import InputError, QueueError, SpecError
from stablenew.jobs.outcome import ErrorEnvelope, JobOutcome
from stablenew.jobs.spec import JobSpec
from stablenew.jobs.status import JobStatus
from stablenew.observe.events import EventBus, EventKind, NoteData
from stablenew.queue.store import JobStore


@pytest.fixture
def jobs(tmp_path: Path) -> JobExecutionController:
    controller = JobExecutionController(
        JobStore(tmp_path / "jobs.db"), EventBus(), AppState(), tmp_path / "out"
    )
    yield controller
    controller.close()


def test_an_edit_changes_a_queued_job_and_says_what_changed(jobs: JobExecutionController) -> None:
    job_id = jobs.submit_pipeline_run(JobSpec(prompt="a fox", steps=20))
    spec = changed(
        jobs.get_job(job_id).spec, parse_assignments(["steps=30", "upscale.enabled=true"])
    )
    event = jobs.edit(job_id, spec)
    assert event.kind == EventKind.JOB_EDITED and event.data == NoteData(
        {"changed": ["steps", "upscale"]}
    )
    job = jobs.get_job(job_id)
    assert job.spec.steps == 30 and job.spec.upscale.enabled
    assert job.spec.output.root == str(jobs.output_root)  # still where it was submitted to
    assert [e.kind for e in jobs.events_since(0, job_id=job_id)][-1] == EventKind.JOB_EDITED


def test_bad_edits_name_the_field(jobs: JobExecutionController) -> None:
    spec = JobSpec(prompt="a fox")
    with pytest.raises(SpecError, match="steps"):
        changed(spec, parse_assignments(["steps=0"]))
    with pytest.raises(InputError, match="expected FIELD=VALUE"):
        parse_assignments(["steps"])
    with pytest.raises(InputError, match="'prompt' is not a group"):
        changed(spec, {"prompt.x": 1})
    assert changed(spec, parse_assignments(["prompt=a cat, at dusk"])).prompt == "a cat, at dusk"


def test_a_running_or_finished_job_cannot_be_edited(jobs: JobExecutionController) -> None:
    job_id = jobs.submit_pipeline_run(JobSpec(prompt="a fox"))
    claimed = jobs.store.claim_next("me")
    assert claimed is not None
    with pytest.raises(QueueError, match="is RUNNING: only a QUEUED job can be edited"):
        jobs.edit(job_id, JobSpec(prompt="too late"))
    assert jobs.get_job(job_id).spec.prompt == "a fox"


def race(path: Path, job_id: str, round_: int) -> tuple[JobSpec, bool]:
    """A claim and an edit of one job, started together from two connections."""
    claimer, editor = JobStore(path), JobStore(path)
    got: dict[str, object] = {}
    start = threading.Barrier(2)

    def claim() -> None:
        start.wait()
        claimed = claimer.claim_next("runner")
        got["spec"] = claimed.job.spec if claimed else None

    def edit() -> None:
        start.wait()
        try:
            editor.edit(job_id, JobSpec(prompt=f"new {round_}", steps=33))
            got["edited"] = True
        except QueueError:
            got["edited"] = False

    threads = [threading.Thread(target=claim), threading.Thread(target=edit)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    claimer.close()
    editor.close()
    spec = got["spec"]
    assert isinstance(spec, JobSpec)
    return spec, bool(got["edited"])


def test_an_edit_racing_a_claim_is_all_or_nothing(tmp_path: Path) -> None:
    path = tmp_path / "jobs.db"
    store = JobStore(path)
    for round_ in range(40):
        job_id = store.submit(JobSpec(prompt=f"old {round_}", steps=10))
        ran, edited = race(path, job_id, round_)
        if edited:
            assert (ran.prompt, ran.steps) == (f"new {round_}", 33)  # the edit came first
        else:
            assert (ran.prompt, ran.steps) == (f"old {round_}", 10)  # the claim came first
        store.finish(job_id, "runner", JobOutcome(status=JobStatus.COMPLETED))


def test_retry_with_changes_links_to_the_original(jobs: JobExecutionController) -> None:
    job_id = jobs.submit_pipeline_run(JobSpec(prompt="big", width=2048, height=2048))
    jobs.store.claim_next("me")
    jobs.store.finish(job_id, "me", JobOutcome.failed(ErrorEnvelope(type="X", message="oom")))
    smaller = changed(jobs.get_job(job_id).spec, {"width": 1024, "height": 1024})
    again = jobs.retry_with(job_id, smaller)
    job = jobs.get_job(again)
    assert job.retried_from == job_id and (job.spec.width, job.spec.height) == (1024, 1024)


def test_export_then_clear_then_import_round_trips_exactly(jobs: JobExecutionController) -> None:
    jobs.submit_many([JobSpec(prompt=p) for p in ("a", "b", "c")])
    jobs.submit_pipeline_run(JobSpec(prompt="urgent", seed=7), priority=5)
    first = jobs.store.pending()
    exported = jobs.export_queue()
    text = exported.model_dump_json(by_alias=True)
    assert '"schema":1' in text
    jobs.cancel_all_pending()
    jobs.remove_where([JobStatus.CANCELLED])
    assert jobs.store.pending() == []
    ids = jobs.import_queue(QueueExport.model_validate_json(text))
    again = jobs.store.pending()
    assert [j.id for j in again] == ids
    assert [(j.spec, j.priority) for j in again] == [(j.spec, j.priority) for j in first]


def test_an_export_with_one_bad_job_queues_nothing(jobs: JobExecutionController) -> None:
    text = (
        '{"schema": 1, "jobs": [{"spec": {"prompt": "fine"}, "priority": 0},'
        ' {"spec": {"prompt": "bad", "steps": 0}, "priority": 0}]}'
    )
    with pytest.raises(ValueError, match="steps"):
        jobs.import_queue(QueueExport.model_validate_json(text))
    assert jobs.store.pending() == []
