"""The user-facing trail of a job, from "Add to Job" to its end.

The builders make the events (wording and payload in one place); the store records the status
changes among them in the same transaction as the change itself, and `JobLifecycleLogger`
publishes the ones that doors emit (Add to Job, Add to Queue).
"""

from __future__ import annotations

from collections.abc import Sequence

from stablenew.jobs.outcome import JobOutcome
from stablenew.jobs.status import JobStatus
from stablenew.observe.events import (
    KIND_OF_STATUS,
    EventBus,
    EventKind,
    JobFinishedData,
    JobLifecycleLogEvent,
    JobStartedData,
    NoteData,
    QueuedData,
    StatusData,
)


def job_queued(job_id: str, source: str) -> JobLifecycleLogEvent:
    return JobLifecycleLogEvent(
        EventKind.JOB_QUEUED,
        "Job queued.",
        source=source,
        job_id=job_id,
        data=StatusData(JobStatus.QUEUED),
    )


def job_started(
    job_id: str, attempt: int, stages: Sequence[str], backend: str = "default"
) -> JobLifecycleLogEvent:
    on = f" on backend {backend}" if backend != "default" else ""
    return JobLifecycleLogEvent(
        EventKind.JOB_STARTED,
        f"Job picked up by the runner{on} (attempt {attempt}; stages {' -> '.join(stages)}).",
        source="runner",
        job_id=job_id,
        data=JobStartedData(attempt, tuple(stages), backend),
    )


def job_finished(job_id: str, outcome: JobOutcome, source: str = "runner") -> JobLifecycleLogEvent:
    count = len(outcome.result.images)
    reason = outcome.error.one_line() if outcome.error is not None else None
    if outcome.status == JobStatus.COMPLETED:
        message = f"Job completed: {count} image(s)."
    elif outcome.status == JobStatus.CANCELLED:
        message = f"Job cancelled; {count} image(s) on disk kept."
    else:
        kept = f" ({count} image(s) on disk kept)" if count else ""
        message = f"Job failed: {reason}{kept}"
    return JobLifecycleLogEvent(
        KIND_OF_STATUS[outcome.status],
        message,
        source=source,
        job_id=job_id,
        data=JobFinishedData(outcome.status, count, outcome.result.run_dir, reason),
    )


def job_cancelled_while_queued(job_id: str, source: str) -> JobLifecycleLogEvent:
    return JobLifecycleLogEvent(
        EventKind.JOB_CANCELLED,
        "Cancelled while queued.",
        source=source,
        job_id=job_id,
        data=JobFinishedData(JobStatus.CANCELLED),
    )


def job_cancelled_after_its_runner_died(job_id: str) -> JobLifecycleLogEvent:
    return JobLifecycleLogEvent(
        EventKind.JOB_CANCELLED,
        "Cancelled: its runner died after the cancel was asked, before it could stop the job.",
        source="runner",
        job_id=job_id,
        data=JobFinishedData(JobStatus.CANCELLED),
    )


def job_requeued(job_id: str, detail: str, source: str = "runner") -> JobLifecycleLogEvent:
    return JobLifecycleLogEvent(
        EventKind.JOB_RECOVERED,
        f"Job queued again: {detail}.",
        source=source,
        job_id=job_id,
        data=StatusData(JobStatus.QUEUED, detail),
    )


def job_quarantined(job_id: str, reason: str) -> JobLifecycleLogEvent:
    return JobLifecycleLogEvent(
        EventKind.JOB_FAILED,
        f"Job failed: {reason}",
        source="runner",
        job_id=job_id,
        data=JobFinishedData(JobStatus.FAILED, reason=reason),
    )


def job_edited(job_id: str, changed: list[str], source: str) -> JobLifecycleLogEvent:
    what = ", ".join(changed) if changed else "nothing"
    return JobLifecycleLogEvent(
        EventKind.JOB_EDITED,
        f"Job edited while queued: {what}.",
        source=source,
        job_id=job_id,
        data=NoteData({"changed": changed}),
    )


def job_moved(job_id: str, position: int, of: int, source: str) -> JobLifecycleLogEvent:
    return JobLifecycleLogEvent(
        EventKind.JOB_MOVED,
        f"Job moved to position {position + 1} of {of} in the queue.",
        source=source,
        job_id=job_id,
        data=NoteData({"position": position}),
    )


def jobs_removed(
    count: int, statuses: list[str], source: str, job_id: str | None = None
) -> JobLifecycleLogEvent:
    what = "Job removed" if job_id else f"{count} job(s) removed ({', '.join(statuses)})"
    return JobLifecycleLogEvent(
        EventKind.JOBS_REMOVED,
        f"{what} from the queue.",
        source=source,
        job_id=job_id,
        data=NoteData({"count": count, "statuses": statuses}),
    )


def queue_paused(reason: str, source: str) -> JobLifecycleLogEvent:
    return JobLifecycleLogEvent(
        EventKind.QUEUE_PAUSED,
        f"Queue paused: {reason}",
        source=source,
        data=NoteData({"reason": reason}),
    )


def queue_resumed(source: str) -> JobLifecycleLogEvent:
    return JobLifecycleLogEvent(EventKind.QUEUE_RESUMED, "Queue resumed.", source=source)


class JobLifecycleLogger:
    """The events doors emit when a user acts (Add to Job, Add to Queue)."""

    def __init__(self, bus: EventBus) -> None:
        self.bus = bus

    def log_add_to_job(self, source: str, draft_size: int, added: int) -> None:
        self.bus.emit(
            EventKind.ADD_TO_JOB,
            f"Add to Job: {added} job(s) added; draft now has {draft_size} item(s).",
            source=source,
            data=NoteData({"draft_size": draft_size, "added": added}),
        )

    def log_add_to_job_noop(self, source: str, draft_size: int, reason: str) -> None:
        self.bus.emit(
            EventKind.ADD_TO_JOB_NOOP,
            f"Add to Job did nothing: {reason}",
            source=source,
            data=NoteData({"draft_size": draft_size, "reason": reason}),
        )

    def log_add_to_queue(self, source: str, job_ids: Sequence[str], ahead: int = 0) -> None:
        first = job_ids[0] if len(job_ids) == 1 else None
        waiting = f" {ahead} job(s) ahead of them." if ahead else ""
        self.bus.emit(
            EventKind.ADD_TO_QUEUE,
            f"Submitted {len(job_ids)} job(s) to the queue.{waiting}",
            source=source,
            job_id=first,
            data=QueuedData(tuple(job_ids), ahead),
        )

    def log_add_to_queue_failed(self, source: str, reason: str) -> None:
        self.bus.emit(
            EventKind.ADD_TO_QUEUE_FAILED,
            f"Nothing was queued: {reason}",
            source=source,
            data=NoteData({"reason": reason}),
        )
