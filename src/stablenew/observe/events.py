"""Typed events and the EventBus every layer publishes to.

A subscriber that raises is reported and skipped: observing a job must never break running it.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import logging
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

import orjson

from stablenew.jobs.job import utcnow

log = logging.getLogger("stablenew.events")


class EventKind(StrEnum):
    # job lifecycle: the user-facing trail
    ADD_TO_JOB = "add_to_job"
    ADD_TO_JOB_NOOP = "add_to_job_noop"
    ADD_TO_QUEUE = "add_to_queue"
    ADD_TO_QUEUE_FAILED = "add_to_queue_failed"
    JOB_STARTED = "job_started"
    JOB_COMPLETED = "job_completed"
    JOB_FAILED = "job_failed"
    JOB_CANCELLED = "job_cancelled"
    JOB_RECOVERED = "job_recovered"
    QUEUE_PAUSED = "queue_paused"
    QUEUE_RESUMED = "queue_resumed"
    # inside a job
    STAGE_STARTED = "stage_started"
    STAGE_FINISHED = "stage_finished"
    PROGRESS = "progress"
    GUARD = "guard"
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
    fields: dict[str, Any] = field(default_factory=dict)
    ts: datetime = field(default_factory=utcnow)
    seq: int = field(default_factory=lambda: next(_seq))

    @functools.cached_property
    def json_line(self) -> bytes:
        """The event as one JSONL line, made once however many logs it goes to."""
        return orjson.dumps(self.as_record(), default=str, option=orjson.OPT_APPEND_NEWLINE)

    def as_record(self) -> dict[str, Any]:
        return {
            "ts": self.ts.isoformat(),
            "seq": self.seq,
            "event": self.kind.value,
            "source": self.source,
            "job_id": self.job_id,
            "stage": self.stage,
            "image_index": self.image_index,
            "total": self.total,
            "message": self.message,
            "fields": self.fields,
        }


Subscriber = Callable[[JobLifecycleLogEvent], None]


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
