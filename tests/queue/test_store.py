"""JobStore on a real SQLite file: ordering, user operations, durability, replay, recovery."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from stablenew.jobs.job import JobOutcome, JobStatus
from stablenew.jobs.spec import JobSpec
from stablenew.queue.store import JobStore, QueueError


def spec(prompt: str) -> JobSpec:
    return JobSpec(prompt=prompt)


@pytest.fixture
def store(tmp_path: Path) -> JobStore:
    return JobStore(tmp_path / "jobs.db")


def drain(store: JobStore) -> list[str]:
    prompts = []
    while (job := store.claim_next("me")) is not None:
        prompts.append(job.spec.prompt)
        store.finish(job.id, "me", JobOutcome(JobStatus.COMPLETED))
    return prompts


def test_claim_order_is_priority_then_fifo(store: JobStore) -> None:
    store.submit_many([spec("a"), spec("b")])
    store.submit(spec("urgent"), priority=5)
    store.submit(spec("c"))
    assert drain(store) == ["urgent", "a", "b", "c"]


def test_claim_marks_running_with_lease_and_attempts(store: JobStore) -> None:
    job_id = store.submit(spec("a"))
    job = store.claim_next("me")
    assert job is not None and job.id == job_id
    assert (job.status, job.attempts) == (JobStatus.RUNNING, 1)
    assert job.started_at is not None and job.started_at.tzinfo is not None
    assert store.claim_next("other") is None
    assert not store.finish(job_id, "other", JobOutcome(JobStatus.COMPLETED))  # not its job
    assert store.finish(job_id, "me", JobOutcome(JobStatus.COMPLETED, {"images": ["x"]}))
    done = store.get(job_id)
    assert done.status == JobStatus.COMPLETED and done.result == {"images": ["x"]}


def test_cancel_retry_remove_clear(store: JobStore) -> None:
    a, b = store.submit_many([spec("a"), spec("b")])
    assert store.cancel(a) == JobStatus.QUEUED
    assert store.get(a).status == JobStatus.CANCELLED
    running = store.claim_next("me")
    assert running is not None and running.id == b
    assert store.cancel(b) == JobStatus.RUNNING
    assert store.renew_lease(b, "me") is True  # the runner learns of the cancel request
    with pytest.raises(QueueError, match="running"):
        store.remove(b)
    with pytest.raises(QueueError, match="only FAILED or CANCELLED"):
        store.retry(b)
    again = store.retry(a)
    assert store.get(again).retried_from == a and store.get(again).status == JobStatus.QUEUED
    store.remove(again)
    with pytest.raises(QueueError):
        store.get(again)
    assert store.clear_finished() == 1  # a
    assert [j.id for j in store.list_jobs()] == [b]


def test_moves(store: JobStore) -> None:
    ids = store.submit_many([spec(p) for p in "abcd"])
    store.submit(spec("hi"), priority=1)
    order = lambda: [j.spec.prompt for j in store.list_jobs([JobStatus.QUEUED])]  # noqa: E731
    assert order() == ["hi", "a", "b", "c", "d"]
    store.move(ids[2], "up")
    assert order() == ["hi", "a", "c", "b", "d"]
    store.move(ids[0], "down")
    assert order() == ["hi", "c", "a", "b", "d"]
    store.move(ids[3], "front")
    assert order() == ["d", "hi", "c", "a", "b"]
    store.move(ids[3], "back")
    assert order() == ["hi", "c", "a", "b", "d"]
    store.move(ids[2], "up")  # into the higher-priority group
    assert order() == ["c", "hi", "a", "b", "d"]
    assert drain(store) == ["c", "hi", "a", "b", "d"]


def test_order_and_pause_survive_a_restart(tmp_path: Path) -> None:
    first = JobStore(tmp_path / "jobs.db")
    ids = first.submit_many([spec(p) for p in "abc"])
    first.move(ids[2], "front")
    first.pause("maintenance")
    first.close()
    again = JobStore(tmp_path / "jobs.db")
    assert again.paused() == "maintenance"
    assert again.claim_next("me") is None
    again.resume()
    assert drain(again) == ["c", "a", "b"]


def test_filters_and_history(store: JobStore) -> None:
    a, b, c = store.submit_many([spec("red fox"), spec("blue 50%_ fox"), spec("green owl")])
    assert {j.id for j in store.list_jobs(text="fox")} == {a, b}
    assert [j.id for j in store.list_jobs(text="50%_")] == [b]
    store.cancel(c)
    job = store.claim_next("me")
    assert job is not None
    store.finish(job.id, "me", JobOutcome.failed({"message": "boom"}))
    history = store.history()
    assert [j.status for j in history] == [JobStatus.FAILED, JobStatus.CANCELLED]
    assert [j.id for j in store.history([JobStatus.CANCELLED])] == [c]
    assert store.get(job.id).error == {"message": "boom"}


def test_event_replay_from_a_sequence_number(store: JobStore) -> None:
    a = store.submit(spec("a"))
    seen = store.events_since(0)
    assert [(e.job_id, e.status) for e in seen] == [(a, JobStatus.QUEUED)]
    job = store.claim_next("me")
    assert job is not None
    store.finish(a, "me", JobOutcome(JobStatus.COMPLETED))
    missed = store.events_since(seen[-1].seq)
    assert [e.status for e in missed] == [JobStatus.RUNNING, JobStatus.COMPLETED]
    assert all(x.seq < y.seq for x, y in itertools.pairwise(missed))
    assert store.events_since(missed[-1].seq) == []
    assert store.last_seq() == missed[-1].seq


def test_recovery_requeues_then_quarantines(tmp_path: Path) -> None:
    store = JobStore(tmp_path / "jobs.db", lease_seconds=0)  # every lease is already stale
    job_id = store.submit(spec("a"))
    for attempt in (1, 2):
        job = store.claim_next(f"dead-{attempt}")
        assert job is not None
        store.save_checkpoint(job_id, f"dead-{attempt}", {"completed": ["txt2img"]})
        assert store.recover(max_attempts=3) == [(job_id, JobStatus.QUEUED)]
        again = store.get(job_id)
        assert again.status == JobStatus.QUEUED and again.attempts == attempt
        assert again.checkpoint == {"completed": ["txt2img"]}
    store.claim_next("dead-3")
    assert store.recover(max_attempts=3) == [(job_id, JobStatus.FAILED)]
    failed = store.get(job_id)
    assert failed.status == JobStatus.FAILED and failed.error is not None
    assert "crashed the runner 3 times" in failed.error["message"]
    assert store.integrity_ok()


def test_live_leases_are_not_recovered(store: JobStore) -> None:
    store.submit(spec("a"))
    store.claim_next("somehost:1:abc")  # another host, lease still valid
    assert store.recover() == []
