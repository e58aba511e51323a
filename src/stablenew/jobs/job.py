"""Job: a JobSpec plus its life (status, timestamps, attempts, checkpoint, result, error)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from stablenew.jobs.outcome import Checkpoint, ErrorEnvelope, JobResult
from stablenew.jobs.spec import JobSpec
from stablenew.jobs.status import JobStatus


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Job:
    id: str
    spec: JobSpec
    status: JobStatus
    priority: int
    position: float
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    attempts: int = 0
    checkpoint: Checkpoint | None = None
    result: JobResult = field(default_factory=JobResult)
    error: ErrorEnvelope | None = None
    retried_from: str | None = None
    cancel_requested: bool = False
    note: str = ""  # why it waits, when no backend can run it now

    @property
    def short_id(self) -> str:
        return self.id[:8]
