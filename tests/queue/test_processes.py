"""Two processes on one database, and a runner process killed with SIGKILL mid-job."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from stablenew.jobs.spec import JobSpec
from stablenew.jobs.status import JobStatus
from stablenew.observe.events import EventKind
from stablenew.queue.store import JobStore

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


def child(*args: str, **kw: object) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.queue.child", *args],
        cwd=ROOT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        **kw,  # type: ignore[call-overload]
    )


def test_two_processes_never_claim_the_same_job(tmp_path: Path) -> None:
    db = tmp_path / "jobs.db"
    store = JobStore(db)
    ids = store.submit_many([JobSpec(prompt=f"job {i}") for i in range(2000)])
    outs = [tmp_path / "a.txt", tmp_path / "b.txt"]
    procs = [
        child("claim", str(db), str(out), stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        for out in outs
    ]
    for p in procs:
        assert p.stdout is not None and p.stdout.readline().strip() == "READY"
    for p in procs:
        assert p.stdin is not None
        p.stdin.write("go\n")
        p.stdin.close()
    for p in procs:
        assert p.wait(60) == 0
    claimed = [line for out in outs for line in out.read_text().split()]
    assert sorted(claimed) == sorted(ids)  # every job once, none twice
    assert all(out.read_text() for out in outs), "both processes got work"
    assert Counter(j.status.value for j in store.list_jobs(limit=5000)) == {"COMPLETED": 2000}
    assert store.integrity_ok()


def start_and_kill(db: Path) -> tuple[str, int]:
    proc = child("run", str(db), stdout=subprocess.PIPE)
    assert proc.stdout is not None
    line = proc.stdout.readline().split()
    assert line and line[0] == "RUNNING", line
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(10)
    return line[1], int(line[2])


def test_killed_runner_job_resumes_then_is_quarantined(tmp_path: Path) -> None:
    db = tmp_path / "jobs.db"
    store = JobStore(db)
    job_id = store.submit(JobSpec(prompt="crashy"))
    for attempt in (1, 2):
        killed_id, attempts = start_and_kill(db)
        assert (killed_id, attempts) == (job_id, attempt)
        assert store.get(job_id).status == JobStatus.RUNNING  # as the dead process left it
        # The dead owner is detected at once on this host, without waiting for its lease.
        recovered = store.recover(max_attempts=3)
        assert [(e.kind, e.job_id) for e in recovered] == [(EventKind.JOB_RECOVERED, job_id)]
        job = store.get(job_id)
        assert job.status == JobStatus.QUEUED and job.checkpoint is not None
        assert job.checkpoint.stages_done == [f"s{n}" for n in range(1, attempt + 1)]
    start_and_kill(db)
    # The next runner start recovers: the third crash quarantines it.
    assert [e.kind for e in store.recover(max_attempts=3)] == [EventKind.JOB_FAILED]
    failed = store.get(job_id)
    assert failed.status == JobStatus.FAILED and failed.error is not None
    assert "crashed the runner 3 times" in failed.error.message
    assert store.list_jobs([JobStatus.RUNNING]) == []
    assert store.integrity_ok()
