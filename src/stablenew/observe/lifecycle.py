"""JobLifecycleLogger: the user-facing trail of a job, from "Add to Job" to its end."""

from __future__ import annotations

from stablenew.jobs.job import JobStatus
from stablenew.observe.events import EventBus, EventKind

FINISHED_KIND = {
    JobStatus.COMPLETED: EventKind.JOB_COMPLETED,
    JobStatus.FAILED: EventKind.JOB_FAILED,
    JobStatus.CANCELLED: EventKind.JOB_CANCELLED,
}


class JobLifecycleLogger:
    def __init__(self, bus: EventBus) -> None:
        self.bus = bus

    def log_add_to_job(self, source: str, draft_size: int, added: int) -> None:
        self.bus.emit(
            EventKind.ADD_TO_JOB,
            f"Add to Job: {added} job(s) added; draft now has {draft_size} item(s).",
            source=source,
            fields={"draft_size": draft_size, "added": added},
        )

    def log_add_to_job_noop(self, source: str, draft_size: int, reason: str) -> None:
        self.bus.emit(
            EventKind.ADD_TO_JOB_NOOP,
            f"Add to Job did nothing: {reason}",
            source=source,
            fields={"draft_size": draft_size, "reason": reason},
        )

    def log_add_to_queue(self, source: str, job_ids: list[str]) -> None:
        first = job_ids[0] if job_ids else None
        self.bus.emit(
            EventKind.ADD_TO_QUEUE,
            f"Submitted {len(job_ids)} job(s) to the queue.",
            source=source,
            job_id=first if len(job_ids) == 1 else None,
            fields={"job_ids": job_ids, "draft_size": len(job_ids)},
        )

    def log_add_to_queue_failed(self, source: str, reason: str) -> None:
        self.bus.emit(
            EventKind.ADD_TO_QUEUE_FAILED,
            f"Nothing was queued: {reason}",
            source=source,
            fields={"reason": reason},
        )

    def log_job_started(self, job_id: str, attempt: int, stages: list[str]) -> None:
        self.bus.emit(
            EventKind.JOB_STARTED,
            f"Job picked up by the runner (attempt {attempt}; stages {' -> '.join(stages)}).",
            source="runner",
            job_id=job_id,
            fields={"attempt": attempt, "stages": stages},
        )

    def log_job_finished(self, job_id: str, status: JobStatus, message: str) -> None:
        self.bus.emit(FINISHED_KIND[status], message, source="runner", job_id=job_id)
