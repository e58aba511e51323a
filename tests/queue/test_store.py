"""JobStore on a real SQLite file: ordering, user operations, durability, replay, recovery,
schema migrations and damaged files."""

from __future__ import annotations

import itertools
import os
import shutil
import socket
import sqlite3
import stat
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from stablenew.errors import QueueError, StoreError
from stablenew.jobs.outcome import Checkpoint, ErrorEnvelope, ImageRecord, JobOutcome, JobResult
from stablenew.jobs.spec import JobSpec
from stablenew.jobs.status import JobStatus
from stablenew.observe.events import EventKind, JobLifecycleLogEvent, StageFinishedData
from stablenew.queue import schema
from stablenew.queue.store import JobStore

FIXTURE = Path(__file__).parent / "fixtures" / "jobs_release_0_1_0.db"
DONE = JobOutcome(status=JobStatus.COMPLETED)


def spec(prompt: str) -> JobSpec:
    return JobSpec(prompt=prompt)


@pytest.fixture
def store(tmp_path: Path) -> JobStore:
    return JobStore(tmp_path / "jobs.db")


def claim(store: JobStore, owner: str = "me"):  # type: ignore[no-untyped-def]
    claimed = store.claim_next(owner)
    return claimed.job if claimed else None


def drain(store: JobStore) -> list[str]:
    prompts = []
    while (job := claim(store)) is not None:
        prompts.append(job.spec.prompt)
        store.finish(job.id, "me", DONE)
    return prompts


def test_claim_order_is_priority_then_fifo(store: JobStore) -> None:
    store.submit_many([spec("a"), spec("b")])
    store.submit(spec("urgent"), priority=5)
    store.submit(spec("c"))
    assert drain(store) == ["urgent", "a", "b", "c"]


def test_claim_marks_running_with_lease_and_attempts(store: JobStore) -> None:
    job_id = store.submit(spec("a"))
    claimed = store.claim_next("me")
    assert claimed is not None and claimed.job.id == job_id
    assert claimed.event.kind == EventKind.JOB_STARTED and claimed.event.store_seq
    job = claimed.job
    assert (job.status, job.attempts) == (JobStatus.RUNNING, 1)
    assert job.started_at is not None and job.started_at.tzinfo is not None
    assert store.claim_next("other") is None
    assert store.finish(job_id, "other", DONE) is None  # not its job
    result = JobResult(images=["x"])
    assert store.finish(job_id, "me", JobOutcome(status=JobStatus.COMPLETED, result=result))
    done = store.get(job_id)
    assert done.status == JobStatus.COMPLETED and done.result.images == ["x"]


def test_cancel_retry_remove_clear(store: JobStore) -> None:
    a, b = store.submit_many([spec("a"), spec("b")])
    before, event = store.cancel(a)
    assert before == JobStatus.QUEUED and event is not None
    assert store.get(a).status == JobStatus.CANCELLED
    running = claim(store)
    assert running is not None and running.id == b
    assert store.cancel(b) == (JobStatus.RUNNING, None)
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
    assert store.clear_finished()[0] == 1  # a
    assert [j.id for j in store.list_jobs()] == [b]


def test_bulk_cancel_and_remove_keep_the_running_job(store: JobStore) -> None:
    ids = store.submit_many([spec(p) for p in "abcd"])
    running = claim(store)
    assert running is not None
    assert len(store.cancel_all_pending()) == 3
    assert store.count([JobStatus.CANCELLED]) == 3
    assert store.get(running.id).status == JobStatus.RUNNING
    assert store.cancel_all_pending() == []
    assert store.remove_where([JobStatus.CANCELLED, JobStatus.RUNNING])[0] == 3
    assert [j.id for j in store.list_jobs()] == [ids[0]]


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


def test_moves_to_an_index_and_removals_are_recorded_for_other_processes(store: JobStore) -> None:
    ids = dict(zip("abcd", store.submit_many([spec(p) for p in "abcd"]), strict=True))
    ids["hi"] = store.submit(spec("hi"), priority=1)
    order = lambda: [j.spec.prompt for j in store.list_jobs([JobStatus.QUEUED])]  # noqa: E731
    seen = store.last_seq()
    assert store.move(ids["a"], 3) is not None  # one transaction, not one step at a time
    assert order() == ["hi", "b", "c", "a", "d"]
    assert store.move(ids["d"], 0) is not None and order() == ["d", "hi", "b", "c", "a"]
    assert store.move(ids["hi"], 99) is not None and order() == ["d", "b", "c", "a", "hi"]
    assert store.move(ids["hi"], 4) is None  # already there: nothing recorded
    store.remove(ids["b"], source="cli")
    store.cancel(ids["c"])
    assert store.remove_where([JobStatus.CANCELLED])[0] == 1
    assert store.remove_where([JobStatus.FAILED]) == (0, None)
    events = store.events_since(seen, 100)
    moved = [(e.job_id, e.message) for e in events if e.kind == EventKind.JOB_MOVED]
    assert moved == [
        (ids["a"], "Job moved to position 4 of 5 in the queue."),
        (ids["d"], "Job moved to position 1 of 5 in the queue."),
        (ids["hi"], "Job moved to position 5 of 5 in the queue."),
    ]
    removed = [(e.job_id, e.source, e.message) for e in events if e.kind == EventKind.JOBS_REMOVED]
    assert removed == [
        (ids["b"], "cli", "Job removed from the queue."),
        (None, "api", "1 job(s) removed (CANCELLED) from the queue."),
    ]
    assert drain(store) == ["d", "a", "hi"]


def test_order_and_pause_survive_a_restart(tmp_path: Path) -> None:
    first = JobStore(tmp_path / "jobs.db")
    ids = first.submit_many([spec(p) for p in "abc"])
    first.move(ids[2], "front")
    first.pause("maintenance")
    first.close()
    again = JobStore(tmp_path / "jobs.db")
    assert again.paused() == "maintenance"
    assert again.claim_next("me") is None
    assert again.resume() is not None
    assert again.resume() is None  # not paused any more
    assert drain(again) == ["c", "a", "b"]


def test_filters_pages_and_history(store: JobStore) -> None:
    a, b, c = store.submit_many([spec("red fox"), spec("blue 50%_ fox"), spec("green owl")])
    assert {j.id for j in store.list_jobs(text="fox")} == {a, b}
    assert [j.id for j in store.list_jobs(text="50%_")] == [b]
    assert [j.id for j in store.list_jobs(limit=1, offset=1)] == [b]
    assert store.count(text="fox") == 2
    store.cancel(c)
    job = claim(store)
    assert job is not None
    store.finish(job.id, "me", JobOutcome.failed(ErrorEnvelope(type="X", message="boom")))
    history = store.history()
    assert [j.status for j in history] == [JobStatus.FAILED, JobStatus.CANCELLED]
    assert [j.id for j in store.history([JobStatus.CANCELLED])] == [c]
    error = store.get(job.id).error
    assert error is not None and error.message == "boom"


def test_event_log_replays_every_lifecycle_event_in_order(store: JobStore) -> None:
    a = store.submit(spec("a"))
    seen = store.events_since(0)
    assert [(e.kind, e.job_id, e.status) for e in seen] == [
        (EventKind.JOB_QUEUED, a, JobStatus.QUEUED)
    ]
    job = claim(store)
    assert job is not None
    stage = JobLifecycleLogEvent(
        EventKind.STAGE_FINISHED,
        "txt2img 1/1 done",
        job_id=a,
        stage="txt2img",
        image_index=1,
        total=1,
        data=StageFinishedData(duration_s=0.5, size=(64, 64), file="/x.png"),
    )
    store.append_events([stage])
    store.finish(a, "me", DONE)
    missed = store.events_since(seen[-1].store_seq or 0)
    assert [e.kind for e in missed] == [
        EventKind.JOB_STARTED,
        EventKind.STAGE_FINISHED,
        EventKind.JOB_COMPLETED,
    ]
    assert missed[1].data == stage.data  # the typed payload survives the round trip
    assert missed[1].pid == os.getpid() and missed[1].persisted
    seqs = [e.store_seq or 0 for e in missed]
    assert all(x < y for x, y in itertools.pairwise(seqs))
    assert store.events_since(seqs[-1]) == []
    assert store.last_seq() == seqs[-1]
    assert [e.kind for e in store.events_since(0, job_id=a)][-1] == EventKind.JOB_COMPLETED


def test_per_image_records_are_the_checkpoint_until_the_job_ends(store: JobStore) -> None:
    job_id = store.submit(spec("a"))
    job = claim(store)
    assert job is not None
    store.save_checkpoint(job_id, "me", Checkpoint(run_dir="/r", seeds=[5, 6]))
    record = ImageRecord(index=1, stage="txt2img", file="/r/1.png", size=(64, 64), seed=5)
    store.save_image(job_id, "other", record)  # not its job: ignored
    assert store.image_records(job_id) == []
    store.save_image(job_id, "me", record)
    assert store.image_records(job_id) == [record]
    assert store.get(job_id).checkpoint == Checkpoint(run_dir="/r", seeds=[5, 6])
    store.finish(job_id, "me", DONE)
    assert store.image_records(job_id) == []


def test_recovery_requeues_then_quarantines(tmp_path: Path) -> None:
    store = JobStore(tmp_path / "jobs.db", lease_seconds=0)  # every lease is already stale
    job_id = store.submit(spec("a"))
    checkpoint = Checkpoint(run_dir="/r", seeds=[1], stages_done=["txt2img"])
    for attempt in (1, 2):
        job = claim(store, f"dead-{attempt}")
        assert job is not None
        store.save_checkpoint(job_id, f"dead-{attempt}", checkpoint)
        events = store.recover(max_attempts=3)
        assert [(e.kind, e.job_id) for e in events] == [(EventKind.JOB_RECOVERED, job_id)]
        again = store.get(job_id)
        assert again.status == JobStatus.QUEUED and again.attempts == attempt
        assert again.checkpoint == checkpoint
    claim(store, "dead-3")
    assert [e.kind for e in store.recover(max_attempts=3)] == [EventKind.JOB_FAILED]
    failed = store.get(job_id)
    assert failed.status == JobStatus.FAILED and failed.error is not None
    assert "crashed the runner 3 times" in failed.error.message
    assert store.integrity_ok()


def test_a_zombie_owner_is_dead_and_a_cancel_asked_of_a_dead_runners_job_holds(
    tmp_path: Path,
) -> None:
    """Found by a tester: a killed worker not yet reaped (a zombie) counted as alive, so its
    job stayed RUNNING after a takeover; and a cancel asked meanwhile was lost (the job was
    re-queued and ran to the end)."""
    store = JobStore(tmp_path / "jobs.db")  # leases of 30 s: only a dead owner frees a job
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    deadline = time.monotonic() + 30
    while psutil.Process(dead.pid).status() != psutil.STATUS_ZOMBIE:  # exited, not reaped
        assert time.monotonic() < deadline
        time.sleep(0.01)
    owner = f"{socket.gethostname()}:{dead.pid}:runner"
    kept, cancelled = store.submit_many([spec("kept"), spec("cancelled")])
    for job_id in (kept, cancelled):
        assert store.claim(job_id, owner, "default") is not None
    assert store.cancel(cancelled)[0] == JobStatus.RUNNING  # asked; its runner never saw it
    events = store.recover(max_attempts=3)
    assert {(e.kind, e.job_id) for e in events} == {
        (EventKind.JOB_RECOVERED, kept),
        (EventKind.JOB_CANCELLED, cancelled),
    }
    assert store.get(kept).status == JobStatus.QUEUED
    assert store.get(cancelled).status == JobStatus.CANCELLED
    dead.wait()


def test_live_leases_are_not_recovered(store: JobStore) -> None:
    store.submit(spec("a"))
    claim(store, "somehost:1:abc")  # another host, lease still valid
    assert store.recover(max_attempts=3) == []


# -- schema versions ---------------------------------------------------------------------------


def test_a_database_of_release_0_1_0_opens_and_keeps_its_jobs(tmp_path: Path) -> None:
    path = tmp_path / "jobs.db"
    shutil.copy(FIXTURE, path)
    store = JobStore(path)
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == schema.VERSION
    jobs = {j.spec.prompt: j for j in store.list_jobs()}
    assert {j.status for j in jobs.values()} == {
        JobStatus.QUEUED,
        JobStatus.COMPLETED,
        JobStatus.FAILED,
        JobStatus.CANCELLED,
    }
    completed = jobs["release fixture 0"]
    assert completed.result.images == [
        "/tmp/fixture/run1/1_upscale.png",
        "/tmp/fixture/run1/2_upscale.png",
    ]
    failed = jobs["release fixture 1"]
    assert failed.error is not None and failed.error.stage == "upscale"
    assert [c.type for c in failed.error.causes] == ["BackendServerError"]  # was cause_chain
    assert store.paused() == "paused in the fixture"
    kinds = [e.kind for e in store.events_since(0)]
    assert kinds[:4] == [EventKind.JOB_QUEUED] * 4 and EventKind.JOB_FAILED in kinds
    store.resume()
    assert drain(store) == ["release fixture 2"]
    store.close()
    assert JobStore(path).count() == 4  # and opens again, already migrated


def test_a_running_job_of_release_0_1_0_keeps_its_seed_and_finished_stage(tmp_path: Path) -> None:
    """A job that was running when the old release died resumes with its seeds and images."""
    path = tmp_path / "jobs.db"
    shutil.copy(FIXTURE, path)
    old_checkpoint = (
        '{"run_dir": "/r", "seed": 40, "stages": [{"stage": "txt2img", "images": ['
        '{"index": 1, "stage": "txt2img", "file": "/r/1.png", "size": [64, 64], "seed": 40},'
        '{"index": 2, "stage": "txt2img", "file": "/r/2.png", "size": [64, 64], "seed": 41}]}]}'
    )
    with sqlite3.connect(path) as db:
        db.execute(
            "UPDATE jobs SET status = 'RUNNING', checkpoint = ? WHERE prompt = ?",
            (old_checkpoint, "release fixture 2"),
        )
    store = JobStore(path)
    job = store.list_jobs([JobStatus.RUNNING])[0]
    assert job.checkpoint == Checkpoint(run_dir="/r", seeds=[40, 41], stages_done=["txt2img"])
    assert [r.file for r in store.image_records(job.id)] == ["/r/1.png", "/r/2.png"]


def test_a_database_from_a_newer_release_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "jobs.db"
    JobStore(path).close()
    with sqlite3.connect(path) as db:
        db.execute(f"PRAGMA user_version = {schema.VERSION + 1}")
    with pytest.raises(StoreError, match="newer than this StableNew"):
        JobStore(path)


# -- damaged files -----------------------------------------------------------------------------


def test_an_empty_file_is_reported_not_treated_as_new(tmp_path: Path) -> None:
    path = tmp_path / "jobs.db"
    path.write_bytes(b"")
    with pytest.raises(StoreError, match=r"empty.*queue recover"):
        JobStore(path)


@pytest.mark.parametrize(
    "content", [b"not a database at all\n" * 100, b"SQLite format 3\x00" + b"\xff" * 4000]
)
def test_a_file_that_is_not_a_database_is_a_readable_error(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "jobs.db"
    path.write_bytes(content)
    with pytest.raises(StoreError, match=r"damaged.*queue recover"):
        JobStore(path)


def test_the_database_is_owner_only(tmp_path: Path) -> None:
    store = JobStore(tmp_path / "home" / "jobs.db")
    store.submit(spec("a secret prompt"))
    for name in ("jobs.db", "jobs.db-wal"):
        mode = stat.S_IMODE((tmp_path / "home" / name).stat().st_mode)
        assert mode == 0o600, (name, oct(mode))
    assert stat.S_IMODE((tmp_path / "home").stat().st_mode) == 0o700


def test_the_webhook_outbox_retries_gives_up_and_stays_bounded(store: JobStore) -> None:
    store.outbox_add([("http://a", "job_completed", "{}"), ("http://b", "job_failed", "{}")])
    due = store.outbox_due(now=time.time() + 1)
    assert [(d.url, d.event, d.attempts) for d in due] == [
        ("http://a", "job_completed", 0),
        ("http://b", "job_failed", 0),
    ]
    store.outbox_result(due[0].id, delivered=True)
    store.outbox_result(due[1].id, delivered=False, error="HTTP 500", retry_at=time.time() + 60)
    assert store.outbox_due(now=time.time() + 1) == []  # b waits for its retry
    assert [d.attempts for d in store.outbox_due(now=time.time() + 61)] == [1]
    store.outbox_result(due[1].id, delivered=False, error="HTTP 500")  # given up
    assert store.outbox_counts() == {"delivered": 1, "failed": 1, "pending": 0}
    store.outbox_add([("http://dead", "job_completed", str(i)) for i in range(30)], keep=10)
    pending = store.outbox_due(now=time.time() + 1, limit=100)
    assert [d.body for d in pending] == [str(i) for i in range(20, 30)]  # the newest kept
