"""What the doors show of a job and of an event: one shape each, defined once.

`JobView` is the job object every door serves: `stablenew ... --json` prints it, the HTTP API
serves it, and a script that reads one reads them all. `EventView` is one line of the lifecycle
trail in the same spirit (the worker's NDJSON, the event stream). Timestamps are ISO 8601 in UTC
("...Z") whatever zone the store or the machine uses. `SCHEMA` versions every JSON document a
door prints; it changes only when a field changes meaning or goes away.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, field_serializer

from stablenew.jobs.job import Job
from stablenew.jobs.outcome import ErrorEnvelope, JobResult
from stablenew.jobs.spec import JobSpec
from stablenew.jobs.status import JobStatus
from stablenew.observe.events import JobLifecycleLogEvent

SCHEMA = 1


def iso_utc(moment: datetime | None) -> str | None:
    """ISO 8601 in UTC with a "Z"; a naive time is taken as UTC (how the store writes them)."""
    if moment is None:
        return None
    aware = moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
    return aware.astimezone(UTC).isoformat().replace("+00:00", "Z")


class JobView(BaseModel):
    """A job as the doors show it: its spec, its life and what it made or why it failed."""

    model_config = ConfigDict(frozen=True)

    id: str
    status: JobStatus
    priority: int
    attempts: int
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    stages_done: list[str] = []  # from the checkpoint: where a resume starts
    cancel_requested: bool = False
    retried_from: str | None = None
    note: str = ""  # why it waits, when no backend of the pool can run it now
    spec: JobSpec
    result: JobResult
    error: ErrorEnvelope | None = None

    @classmethod
    def of(cls, job: Job) -> JobView:
        return cls(
            id=job.id,
            status=job.status,
            priority=job.priority,
            attempts=job.attempts,
            created_at=job.created_at,
            started_at=job.started_at,
            finished_at=job.finished_at,
            stages_done=list(job.checkpoint.stages_done) if job.checkpoint else [],
            cancel_requested=job.cancel_requested,
            note=job.note,
            retried_from=job.retried_from,
            spec=job.spec,
            result=job.result,
            error=job.error,
        )

    @field_serializer("created_at", "started_at", "finished_at")
    def _utc(self, moment: datetime | None) -> str | None:
        return iso_utc(moment)


def job_record(job: Job) -> dict[str, Any]:
    """The JSON form of `JobView.of(job)`."""
    return JobView.of(job).model_dump(mode="json")


class EventView(BaseModel):
    """One event of the lifecycle trail: what happened, to which job, stage and image."""

    model_config = ConfigDict(frozen=True)

    seq: int | None  # the store's order (None: not recorded there)
    ts: datetime
    kind: str
    source: str
    job_id: str | None = None
    stage: str | None = None
    image_index: int | None = None
    total: int | None = None
    message: str
    fields: dict[str, Any] = {}

    @classmethod
    def of(cls, event: JobLifecycleLogEvent) -> EventView:
        return cls(
            seq=event.store_seq,
            ts=event.ts,
            kind=event.kind.value,
            source=event.source,
            job_id=event.job_id,
            stage=event.stage,
            image_index=event.image_index,
            total=event.total,
            message=event.message,
            fields=event.fields,
        )

    @field_serializer("ts")
    def _utc(self, moment: datetime) -> str | None:
        return iso_utc(moment)
