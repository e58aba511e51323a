"""Job: a JobSpec plus its life (status, timestamps, attempts, checkpoint, result, error)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from stablenew.jobs.spec import JobSpec


class JobStatus(StrEnum):
    QUEUED = "QUEUED"
    RUNNING = "RUNNING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"

    @property
    def finished(self) -> bool:
        return self in (JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED)


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
    checkpoint: dict[str, Any] = field(default_factory=dict)
    result: dict[str, Any] = field(default_factory=dict)
    error: dict[str, Any] | None = None
    retried_from: str | None = None
    cancel_requested: bool = False

    @property
    def short_id(self) -> str:
        return self.id[:8]


@dataclass(frozen=True)
class JobOutcome:
    """What executing a job produced; the runner records it in the store."""

    status: JobStatus
    result: dict[str, Any] = field(default_factory=dict)
    error: dict[str, Any] | None = None
    backend_down: bool = False  # the failure was the backend dying: wait before the next job

    @classmethod
    def failed(
        cls, error: dict[str, Any], result: dict[str, Any] | None = None, backend_down: bool = False
    ) -> JobOutcome:
        return cls(JobStatus.FAILED, result or {}, error, backend_down)


def error_envelope(
    exc: BaseException, *, stage: str | None = None, image_index: int | None = None
) -> dict[str, Any]:
    """An envelope for an exception that carries none of its own."""
    chain = []
    cause: BaseException | None = exc
    while cause is not None and len(chain) < 10:
        chain.append({"type": type(cause).__name__, "message": str(cause)})
        cause = cause.__cause__ or cause.__context__
    return {
        "type": type(exc).__name__,
        "message": str(exc) or type(exc).__name__,
        "stage": stage,
        "image_index": image_index,
        "cause_chain": chain,
        "artifacts": [],
    }
