"""A pool's runners choose from the same queue: losing a job to a sibling costs no wait."""

from __future__ import annotations

from pathlib import Path

from stablenew.jobs.cancel import CancelToken
from stablenew.jobs.execution import CheckpointSaver
from stablenew.jobs.job import Job
from stablenew.jobs.outcome import JobOutcome
from stablenew.jobs.spec import JobSpec
from stablenew.jobs.status import JobStatus
from stablenew.observe.events import EventBus
from stablenew.queue.runner import JobRunner
from stablenew.queue.store import JobStore


def never(job: Job, token: CancelToken, saver: CheckpointSaver) -> JobOutcome:
    raise AssertionError("not run in this test")


def test_a_job_taken_by_a_sibling_runner_makes_the_runner_choose_again_at_once(
    tmp_path: Path,
) -> None:
    store = JobStore(tmp_path / "jobs.db")
    first = store.submit(JobSpec(prompt="first"))
    second = store.submit(JobSpec(prompt="second"))
    sibling = JobRunner(store, never, EventBus(), max_attempts=3, name="b")
    picks: list[list[str]] = []

    def pick() -> Job | None:
        window = store.pending()
        picks.append([j.id for j in window])
        if len(picks) == 1:  # the sibling claims the head between our choice and our claim
            assert store.claim(window[0].id, sibling.owner, "b") is not None
        return window[0] if window else None

    runner = JobRunner(store, never, EventBus(), max_attempts=3, name="a", pick=pick)
    claim = runner._next()
    assert claim is not None and claim.job.id == second  # not None until the next poll
    assert picks == [[first, second], [second]]
    assert store.get(first).status == JobStatus.RUNNING


def test_a_runner_that_loses_to_a_pause_does_not_spin(tmp_path: Path) -> None:
    store = JobStore(tmp_path / "jobs.db")
    store.submit(JobSpec(prompt="only"))
    calls = 0

    def pick() -> Job | None:
        window = store.pending()
        nonlocal calls
        calls += 1
        store.pause("the user paused")  # between our choice and our claim
        return window[0]

    runner = JobRunner(store, never, EventBus(), max_attempts=3, name="a", pick=pick)
    assert runner._next() is None and calls == 1
