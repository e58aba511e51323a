"""A separate process for the queue's multi-process tests.

python -m tests.queue.child claim DB OUT   claim and complete jobs until none is left
python -m tests.queue.child run DB         run jobs; each saves a checkpoint, then blocks
"""

from __future__ import annotations

import sys
from pathlib import Path

from stablenew.jobs.cancel import CancelToken
from stablenew.jobs.execution import CheckpointSaver
from stablenew.jobs.job import Job
from stablenew.jobs.outcome import Checkpoint, JobOutcome
from stablenew.jobs.status import JobStatus
from stablenew.observe.events import EventBus
from stablenew.queue.runner import JobRunner
from stablenew.queue.store import JobStore, new_owner


def claim(db: Path, out: Path) -> None:
    store = JobStore(db)
    owner = new_owner()
    print("READY", flush=True)
    sys.stdin.readline()  # start together with the other claimer
    with out.open("w") as f:
        while (claimed := store.claim_next(owner)) is not None:
            f.write(claimed.job.id + "\n")
            store.finish(claimed.job.id, owner, JobOutcome(status=JobStatus.COMPLETED))


def run(db: Path) -> None:
    def execute(job: Job, token: CancelToken, saver: CheckpointSaver) -> JobOutcome:
        done = job.checkpoint.stages_done if job.checkpoint else []
        saver.save(Checkpoint(run_dir="/r", seeds=[1], stages_done=[*done, f"s{job.attempts}"]))
        print(f"RUNNING {job.id} {job.attempts}", flush=True)
        token.wait()
        return JobOutcome(status=JobStatus.CANCELLED)

    store = JobStore(db, lease_seconds=2)
    runner = JobRunner(store, execute, EventBus(), max_attempts=3, poll_interval=0.05)
    runner.start()
    runner._thread.join()  # type: ignore[union-attr]  # until killed


if __name__ == "__main__":
    if sys.argv[1] == "claim":
        claim(Path(sys.argv[2]), Path(sys.argv[3]))
    else:
        run(Path(sys.argv[2]))
