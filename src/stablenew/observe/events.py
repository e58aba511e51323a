"""Typed events and the EventBus every layer publishes to.

One event class, `JobLifecycleLogEvent`, whose `data` is a typed payload for the kinds that
consumers read (progress, stage boundaries, guard decisions, recovery steps, backend states, job
starts and ends), so no consumer digs in a dict by string key. Written out (JSONL, the store's
event log, the HTTP API) the payload becomes the record's `fields`.

A subscriber that raises is reported and skipped: observing a job must never break running it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import itertools
import logging
import os
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol

import orjson

from stablenew.jobs.job import utcnow
from stablenew.jobs.status import BackendState, JobStatus

log = logging.getLogger("stablenew.events")
PID = os.getpid()


class EventKind(StrEnum):
    # job lifecycle: the user-facing trail
    ADD_TO_JOB = "add_to_job"
    ADD_TO_JOB_NOOP = "add_to_job_noop"
    ADD_TO_QUEUE = "add_to_queue"
    ADD_TO_QUEUE_FAILED = "add_to_queue_failed"
    JOB_QUEUED = "job_queued"
    JOB_STARTED = "job_started"
    JOB_COMPLETED = "job_completed"
    JOB_FAILED = "job_failed"
    JOB_CANCELLED = "job_cancelled"
    JOB_RECOVERED = "job_recovered"
    JOB_EDITED = "job_edited"
    JOB_MOVED = "job_moved"
    JOBS_REMOVED = "jobs_removed"
    QUEUE_PAUSED = "queue_paused"
    QUEUE_RESUMED = "queue_resumed"
    # inside a job
    STAGE_STARTED = "stage_started"
    STAGE_FINISHED = "stage_finished"
    PROGRESS = "progress"
    GUARD = "guard"
    RECOVERY = "recovery"
    # the backend
    BACKEND_STARTING = "backend_starting"
    BACKEND_READY = "backend_ready"
    BACKEND_CRASHED = "backend_crashed"
    BACKEND_RESTARTING = "backend_restarting"
    BACKEND_FAILED = "backend_failed"
    BACKEND_STOPPING = "backend_stopping"
    BACKEND_STOPPED = "backend_stopped"
    # the app
    LIFECYCLE = "lifecycle"
    WARNING = "warning"


FINISHED_KINDS = {EventKind.JOB_COMPLETED, EventKind.JOB_FAILED, EventKind.JOB_CANCELLED}
STATUS_OF_KIND = {
    EventKind.JOB_QUEUED: JobStatus.QUEUED,
    EventKind.JOB_RECOVERED: JobStatus.QUEUED,
    EventKind.JOB_STARTED: JobStatus.RUNNING,
    EventKind.JOB_COMPLETED: JobStatus.COMPLETED,
    EventKind.JOB_FAILED: JobStatus.FAILED,
    EventKind.JOB_CANCELLED: JobStatus.CANCELLED,
}
KIND_OF_STATUS = {
    JobStatus.QUEUED: EventKind.JOB_QUEUED,
    JobStatus.RUNNING: EventKind.JOB_STARTED,
    JobStatus.COMPLETED: EventKind.JOB_COMPLETED,
    JobStatus.FAILED: EventKind.JOB_FAILED,
    JobStatus.CANCELLED: EventKind.JOB_CANCELLED,
}
BACKEND_KIND = {
    BackendState.STARTING: EventKind.BACKEND_STARTING,
    BackendState.READY: EventKind.BACKEND_READY,
    BackendState.CRASHED: EventKind.BACKEND_CRASHED,
    BackendState.RESTARTING: EventKind.BACKEND_RESTARTING,
    BackendState.FAILED: EventKind.BACKEND_FAILED,
    BackendState.STOPPING: EventKind.BACKEND_STOPPING,
    BackendState.STOPPED: EventKind.BACKEND_STOPPED,
}
STATE_OF_BACKEND_KIND = {kind: state for state, kind in BACKEND_KIND.items()}


# -- payloads -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ProgressData:
    step: int
    steps: int
    eta: float = 0.0
    fraction: float = 0.0
    preview: int = 0  # the number of the job's latest live preview (0: none yet)


@dataclass(frozen=True, slots=True)
class StageStartedData:
    cancelled: bool = False
    upscaler: str | None = None
    tile_size: int | None = None
    source: tuple[int, int] | None = None
    target: tuple[int, int] | None = None


@dataclass(frozen=True, slots=True)
class StageFinishedData:
    duration_s: float = 0.0
    size: tuple[int, int] | None = None
    attempts: int = 0
    file: str | None = None
    cancelled: bool = False
    resumed: bool = False
    backend: str = "default"  # which backend of the pool made it


@dataclass(frozen=True, slots=True)
class GuardData:
    decision: str


@dataclass(frozen=True, slots=True)
class RecoveryData:
    """A step of the recovery layer: crash_detected, artifacts_written, restart, retry,
    breaker_open, breaker_half_open, breaker_closed, gave_up."""

    step: str
    attempt: int = 0
    cause: str = ""
    artifacts: tuple[str, ...] = ()
    backend: str = "default"


@dataclass(frozen=True, slots=True)
class BackendData:
    state: BackendState
    detail: str = ""
    backend: str = "default"  # which backend of the pool


@dataclass(frozen=True, slots=True)
class JobStartedData:
    attempt: int
    stages: tuple[str, ...]
    backend: str = "default"  # which backend of the pool runs it


@dataclass(frozen=True, slots=True)
class JobFinishedData:
    status: JobStatus
    images: int = 0
    run_dir: str | None = None
    reason: str | None = None  # a failure's one-line reason


@dataclass(frozen=True, slots=True)
class QueuedData:
    job_ids: tuple[str, ...]
    ahead: int = 0  # jobs that were queued before these


@dataclass(frozen=True, slots=True)
class StatusData:
    """A status change recorded by the store (queued, recovered, released, cancelled)."""

    status: JobStatus
    detail: str = ""


@dataclass(frozen=True, slots=True)
class NoteData:
    """Free-form details for kinds no consumer reads field by field."""

    values: dict[str, Any]


EventData = (
    ProgressData
    | StageStartedData
    | StageFinishedData
    | GuardData
    | RecoveryData
    | BackendData
    | JobStartedData
    | JobFinishedData
    | QueuedData
    | StatusData
    | NoteData
)

DATA_OF_KIND: dict[EventKind, type[Any]] = {
    EventKind.PROGRESS: ProgressData,
    EventKind.STAGE_STARTED: StageStartedData,
    EventKind.STAGE_FINISHED: StageFinishedData,
    EventKind.GUARD: GuardData,
    EventKind.RECOVERY: RecoveryData,
    EventKind.JOB_STARTED: JobStartedData,
    EventKind.JOB_COMPLETED: JobFinishedData,
    EventKind.JOB_FAILED: JobFinishedData,
    EventKind.JOB_CANCELLED: JobFinishedData,
    EventKind.ADD_TO_QUEUE: QueuedData,
    EventKind.JOB_QUEUED: StatusData,
    EventKind.JOB_RECOVERED: StatusData,
    **{kind: BackendData for kind in STATE_OF_BACKEND_KIND},
}

_TUPLE_FIELDS = {"source", "target", "size", "artifacts", "stages", "job_ids"}


def data_fields(data: EventData | None) -> dict[str, Any]:
    if data is None:
        return {}
    if isinstance(data, NoteData):
        return dict(data.values)
    return {f.name: getattr(data, f.name) for f in dataclasses.fields(data)}


def data_from_fields(kind: EventKind, values: dict[str, Any]) -> EventData | None:
    """Rebuild a typed payload from its written form (the store's log, a JSONL line)."""
    cls = DATA_OF_KIND.get(kind)
    if not values:
        return None
    if cls is None:
        return NoteData(dict(values))
    names = {f.name for f in dataclasses.fields(cls)}
    kwargs = {
        k: tuple(v) if k in _TUPLE_FIELDS and isinstance(v, list) else v
        for k, v in values.items()
        if k in names
    }
    if cls is BackendData:
        kwargs["state"] = BackendState(str(kwargs.get("state", BackendState.STOPPED)))
    if cls in (JobFinishedData, StatusData) and "status" in kwargs:
        kwargs["status"] = JobStatus(str(kwargs["status"]))
    try:
        return cls(**kwargs)  # type: ignore[no-any-return]
    except TypeError:  # a record from another release: keep what it said
        return NoteData(dict(values))


_seq = itertools.count(1)


@dataclass(frozen=True)
class JobLifecycleLogEvent:
    """One line of the trail: what happened, to which job, stage and image, and why."""

    kind: EventKind
    message: str
    source: str = "app"
    job_id: str | None = None
    stage: str | None = None
    image_index: int | None = None
    total: int | None = None
    data: EventData | None = None
    ts: datetime = field(default_factory=utcnow)
    seq: int = field(default_factory=lambda: next(_seq))  # this process's order
    pid: int = PID  # the process that emitted it
    store_seq: int | None = None  # the store's event-log order, once it is recorded there
    persisted: bool = False  # already in the store's log (written with a status change)

    @property
    def fields(self) -> dict[str, Any]:
        return data_fields(self.data)

    @property
    def status(self) -> JobStatus | None:
        if isinstance(self.data, JobFinishedData | StatusData):
            return self.data.status
        return STATUS_OF_KIND.get(self.kind)

    @functools.cached_property
    def json_line(self) -> bytes:
        """The event as one JSONL line, made once however many logs it goes to."""
        return orjson.dumps(self.as_record(), default=str, option=orjson.OPT_APPEND_NEWLINE)

    def as_record(self) -> dict[str, Any]:
        return {
            "ts": self.ts.isoformat(),
            "seq": self.seq,
            "pid": self.pid,
            "store_seq": self.store_seq,
            "event": self.kind.value,
            "source": self.source,
            "job_id": self.job_id,
            "stage": self.stage,
            "image_index": self.image_index,
            "total": self.total,
            "message": self.message,
            "fields": self.fields,
        }


class Subscriber(Protocol):
    """Anything that hears events: the JSONL sinks, AppState, the store's log, a door."""

    def __call__(self, event: JobLifecycleLogEvent, /) -> None: ...


class EventBus:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._subscribers: list[Subscriber] = []
        self._local = threading.local()

    def subscribe(self, subscriber: Subscriber) -> Callable[[], None]:
        with self._lock:
            self._subscribers = [*self._subscribers, subscriber]

        def unsubscribe() -> None:
            with self._lock:
                self._subscribers = [s for s in self._subscribers if s is not subscriber]

        return unsubscribe

    def publish(self, event: JobLifecycleLogEvent) -> None:
        # An event published by a subscriber while it handles another is delivered after that
        # one, so every subscriber sees the same order.
        pending: deque[JobLifecycleLogEvent] | None = getattr(self._local, "pending", None)
        if pending is not None:
            pending.append(event)
            return
        self._local.pending = pending = deque([event])
        try:
            while pending:
                self._deliver(pending.popleft())
        finally:
            self._local.pending = None

    def _deliver(self, event: JobLifecycleLogEvent) -> None:
        for subscriber in self._subscribers:  # a snapshot: subscribing never blocks publishing
            try:
                subscriber(event)
            except Exception:
                with contextlib.suppress(Exception):  # logging itself failed: nothing left to tell
                    log.exception("event subscriber %r failed on %s", subscriber, event.kind)

    def emit(self, kind: EventKind, message: str, **kw: Any) -> JobLifecycleLogEvent:
        event = JobLifecycleLogEvent(kind, message, **kw)
        self.publish(event)
        return event
