"""The runner outlives a store that refuses writes (a full or read-only disk under the home):
a job's end is recorded once writes work again, and the queue goes on in the same process."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
from pathlib import Path

from stablenew.errors import StoreError
from stablenew.jobs.cancel import CancelToken
from stablenew.jobs.execution import CheckpointSaver
from stablenew.jobs.job import Job
from stablenew.jobs.outcome import JobOutcome
from stablenew.jobs.spec import JobSpec
from stablenew.jobs.status import JobStatus
from stablenew.observe.events import EventBus, EventKind, JobLifecycleLogEvent
from stablenew.queue.runner import JobRunner
from stablenew.queue.store import JobStore
from tests.helpers import Waiter

FULL = "the disk holding jobs.db is full (database or disk is full); free some space and retry"


class FullDisk(JobStore):
    """A real store whose writes of a job's end fail until the disk has room again. (A real
    full disk is not deterministic: SQLite may reuse WAL space it already holds.)"""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.full = threading.Event()
        self.refused = 0

    def finish(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        if self.full.is_set():
            self.refused += 1
            raise StoreError(FULL)
        return super().finish(*args, **kwargs)


def done(job: Job, token: CancelToken, saver: CheckpointSaver) -> JobOutcome:
    return JobOutcome(status=JobStatus.COMPLETED)


def test_a_job_end_the_store_refuses_is_recorded_later_and_the_queue_goes_on(
    tmp_path: Path,
) -> None:
    store = FullDisk(tmp_path / "jobs.db")
    bus = EventBus()
    warnings: list[str] = []
    said = threading.Event()

    def hear(event: JobLifecycleLogEvent) -> None:
        if event.kind == EventKind.WARNING:
            warnings.append(event.message)
            said.set()

    bus.subscribe(hear)
    ended = Waiter(bus)
    ids = store.submit_many([JobSpec(prompt=p) for p in ("first", "second", "third")])
    store.full.set()
    runner = JobRunner(store, done, bus, max_attempts=3, poll_interval=0.05)
    runner.start()
    try:
        assert said.wait(30), "the runner says it cannot record the job's end"
        assert store.refused >= 1 and runner.alive  # before the fix the thread died here
        store.full.clear()  # space freed
        ended.wait(EventKind.JOB_COMPLETED, ids[-1])  # the jobs run in order
        assert [store.get(i).status for i in ids] == [JobStatus.COMPLETED] * 3
    finally:
        assert runner.stop(10)
    assert warnings[0].startswith(f"job {ids[0][:8]}: cannot record its end: {FULL}")
    assert len([w for w in warnings if "cannot record" in w]) == 1  # said once, not per retry


def test_a_job_whose_owner_dies_after_the_takeover_is_recovered_without_a_restart(
    tmp_path: Path,
) -> None:
    """Found by a tester: recovery ran once, at start; the killed owner still held its job
    then (a zombie, its lease alive), and nothing looked again: RUNNING for good."""
    store = JobStore(tmp_path / "jobs.db")
    owner_process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    owner = f"{socket.gethostname()}:{owner_process.pid}:old:default"
    (job_id,) = store.submit_many([JobSpec(prompt="left running")])
    assert store.claim(job_id, owner, "default") is not None
    bus = EventBus()
    ended = threading.Event()
    bus.subscribe(
        lambda e: ended.set() if e.job_id == job_id and e.kind == EventKind.JOB_COMPLETED else None
    )
    runner = JobRunner(store, done, bus, max_attempts=3, poll_interval=0.05, recover_every=0.2)
    runner.start()  # its first recovery sees a live owner and leaves the job alone
    try:
        assert store.get(job_id).status == JobStatus.RUNNING
        owner_process.kill()  # not reaped: a zombie until wait()
        assert ended.wait(30), "the job was recovered and run by the new owner"
    finally:
        assert runner.stop(10)
        owner_process.wait()
    assert store.get(job_id).attempts == 2
