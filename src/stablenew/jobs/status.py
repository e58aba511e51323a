"""The states a job and a backend go through: one enum each, used end to end."""

from __future__ import annotations

from enum import StrEnum


class JobStatus(StrEnum):
    QUEUED = "QUEUED"
    RUNNING = "RUNNING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"

    @property
    def finished(self) -> bool:
        return self in (JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED)


class BackendState(StrEnum):
    STOPPED = "STOPPED"
    STARTING = "STARTING"
    READY = "READY"
    CRASHED = "CRASHED"
    RESTARTING = "RESTARTING"
    STOPPING = "STOPPING"
    FAILED = "FAILED"


class FailureReason(StrEnum):
    """Why a job failed, when the reason is the environment rather than the job: two jobs in a
    row failing for the same one pause the queue instead of failing the rest."""

    OUTPUT_UNWRITABLE = "output_unwritable"
    OUTPUT_FULL = "output_full"
    BACKEND_UNREACHABLE = "backend_unreachable"
    AUTH_REJECTED = "auth_rejected"
    OUT_OF_MEMORY = "out_of_memory"
    CRASH_LOOP = "crash_loop"


REASON_TEXT = {
    FailureReason.OUTPUT_UNWRITABLE: "the output folder cannot be written",
    FailureReason.OUTPUT_FULL: "the output folder's disk is full",
    FailureReason.BACKEND_UNREACHABLE: "the backend cannot be reached",
    FailureReason.AUTH_REJECTED: "the backend rejected the credentials",
    FailureReason.OUT_OF_MEMORY: "the backend ran out of memory",
    FailureReason.CRASH_LOOP: "the backend crashes every time it starts",
}
