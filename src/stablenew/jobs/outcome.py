"""What a job carries out of the pipeline: typed, stored as JSON, served as is by every door.

- `ErrorEnvelope`: why it failed (stage, image, causes, artifact paths, environmental reason)
- `ImageRecord` / `StageRecord`: one image of one stage, with its provenance
- `Checkpoint`: where a resume starts (run folder, every image's seed, stages done)
- `JobResult`: what it made
- `JobOutcome`: what executing a job returns to the runner

Stored records are read with `extra="ignore"`, so a database written by an older release still
opens; the models are frozen, so what a door reads is what was stored.
"""

from __future__ import annotations

import errno
from typing import Any

from pydantic import AliasChoices, BaseModel, ConfigDict, Field

from stablenew.errors import (
    BackendAuthRejected,
    BackendCrashLoop,
    BackendError,
    BackendOutOfMemory,
    BackendStartError,
    BackendUnavailable,
    OutputError,
)
from stablenew.jobs.status import REASON_TEXT, FailureReason, JobStatus


class Stored(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")


class Cause(Stored):
    """One link of a failure: an exception as it was raised, with where it happened."""

    type: str
    message: str
    endpoint: str | None = None
    stage: str | None = None
    status: int | None = None
    snippet: str = ""

    @classmethod
    def of(cls, exc: BaseException) -> Cause:
        if isinstance(exc, BackendError):
            return cls(type=type(exc).__name__, message=exc.message, **exc.details())
        return cls(type=type(exc).__name__, message=str(exc) or type(exc).__name__)

    def __str__(self) -> str:
        where = " ".join(p for p in (self.stage, self.endpoint) if p)
        status = f" HTTP {self.status}" if self.status else ""
        return f"{where}{status}: {self.message}" if where or status else self.message


def reason_of(exc: BaseException) -> FailureReason | None:
    """The environmental reason behind an exception, if there is one."""
    if isinstance(exc, OutputError):
        return FailureReason(exc.reason)
    if isinstance(exc, BackendCrashLoop):
        return FailureReason.CRASH_LOOP
    if isinstance(exc, BackendAuthRejected):
        return FailureReason.AUTH_REJECTED
    if isinstance(exc, BackendOutOfMemory):
        return FailureReason.OUT_OF_MEMORY
    if isinstance(exc, BackendStartError | BackendUnavailable):
        return FailureReason.BACKEND_UNREACHABLE
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return FailureReason.OUTPUT_FULL
    return None


class ErrorEnvelope(Stored):
    """Why a job failed: the one record every door shows, built in one place per source."""

    type: str
    message: str
    stage: str | None = None
    image_index: int | None = None
    job_id: str | None = None
    reason: FailureReason | None = None
    causes: list[Cause] = Field(
        default_factory=list, validation_alias=AliasChoices("causes", "cause_chain")
    )
    attempts: int = 0
    restarts: int = 0
    artifacts: list[str] = Field(default_factory=list)

    @classmethod
    def from_exception(
        cls,
        exc: BaseException,
        *,
        stage: str | None = None,
        image_index: int | None = None,
        job_id: str | None = None,
    ) -> ErrorEnvelope:
        chain: list[Cause] = []
        cause: BaseException | None = exc
        while cause is not None and len(chain) < 10:
            chain.append(Cause.of(cause))
            cause = cause.__cause__ or cause.__context__
        return cls(
            type=type(exc).__name__,
            message=str(exc) or type(exc).__name__,
            stage=stage,
            image_index=image_index,
            job_id=job_id,
            reason=reason_of(exc),
            causes=chain,
        )

    def reason_line(self) -> str:
        """Why, in one short line, as every door shows it: where, then StableNew's own words
        for an environmental reason ("the backend ran out of memory"), else the root cause's
        first line (the whole chain stays in the envelope)."""
        where = self.stage or ""
        if self.image_index is not None:
            where = f"{where} image {self.image_index}".strip()
        if self.reason is not None:
            why = REASON_TEXT.get(self.reason, str(self.reason))
        else:
            root = self.causes[-1].message if self.causes else self.message
            why = (root.strip().splitlines() or [self.type])[0]
        return f"{where}: {why}" if where else why

    def one_line(self) -> str:
        """The failure in one line: where, then the first line of the message."""
        where = self.stage or ""
        if self.image_index is not None:
            where += f" image {self.image_index}"
        first = self.message.strip().splitlines()[0] if self.message.strip() else self.type
        return f"{where.strip()}: {first}" if where.strip() else first


class BackendInfo(Stored):
    name: str | None = None  # which backend of the pool made it
    sd_model_name: str | None = None
    sd_model_hash: str | None = None
    version: str | None = None


class ImageRecord(Stored):
    """One image of one stage: where it is and how it was made."""

    index: int
    stage: str
    file: str
    size: tuple[int, int]
    seed: int
    infotext: str = ""
    duration_s: float = 0.0
    attempts: int = 1
    restarts: int = 0
    recovered_from: list[str] = Field(default_factory=list)
    payload: dict[str, Any] = Field(default_factory=dict)  # the A1111 request, sanitized
    backend: BackendInfo = BackendInfo()
    guard: list[str] = Field(default_factory=list)


class StageRecord(Stored):
    stage: str
    images: list[ImageRecord]


class Checkpoint(Stored):
    """Where a resumed job starts. Seeds are fixed before the first backend call, so a resume
    redoes an image with the seed it had; each finished image is a row of its own in the store."""

    run_dir: str
    seeds: list[int]
    # With a variation strength, A1111 keeps the seed and counts the variation seed up; empty
    # without one (the spec's subseed is sent as it is).
    subseeds: list[int] = Field(default_factory=list)
    stages_done: list[str] = Field(default_factory=list)


class JobResult(Stored):
    run_dir: str | None = None
    seeds: list[int] = Field(default_factory=list)
    images: list[str] = Field(default_factory=list)  # the furthest file of every image
    manifests: list[str] = Field(default_factory=list)
    stages: dict[str, list[str]] = Field(default_factory=dict)
    durations_s: dict[str, float] = Field(default_factory=dict)


class JobOutcome(Stored):
    """What executing a job produced. QUEUED means "give it back": it resumes later."""

    status: JobStatus
    result: JobResult = JobResult()
    error: ErrorEnvelope | None = None

    @classmethod
    def failed(cls, error: ErrorEnvelope, result: JobResult | None = None) -> JobOutcome:
        return cls(status=JobStatus.FAILED, result=result or JobResult(), error=error)

    @property
    def released(self) -> bool:
        return self.status == JobStatus.QUEUED
