"""AppState: the observable state user interfaces render, fed by the EventBus.

Thread-safe: events arrive on worker threads; listeners are called on the publishing thread
(a GUI moves them onto its own thread). A listener that raises is reported and skipped.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from stablenew.jobs.job import Job
from stablenew.jobs.status import BackendState
from stablenew.observe.events import (
    STATE_OF_BACKEND_KIND,
    BackendData,
    EventKind,
    JobLifecycleLogEvent,
    JobStartedData,
    ProgressData,
    RecoveryData,
)

log = logging.getLogger("stablenew.app")

Listener = Callable[[str], None]


class Lifecycle(StrEnum):
    IDLE = "IDLE"
    RUNNING = "RUNNING"
    STOPPING = "STOPPING"
    ERROR = "ERROR"


@dataclass(frozen=True)
class ActiveStage:
    job_id: str
    stage: str | None = None
    image_index: int | None = None
    total: int | None = None
    step: int = 0
    steps: int = 0
    eta: float = 0.0
    note: str = ""  # what happens instead of sampling (the backend restarting): no steps then


# What a recovery step means for the running job, while it lasts (until its next step).
RECOVERY_NOTES = {
    "crash_detected": "the backend crashed",
    "artifacts_written": "the backend crashed: its logs are saved",
    "restart": "restarting the backend…",
    "retry": "retrying after a restart…",
    "gave_up": "giving up",
}


# The running job's note while its backend is down (until its next step).
BACKEND_DOWN = {
    BackendState.STARTING: "waiting for the backend to start…",
    BackendState.CRASHED: "the backend crashed",
    BackendState.RESTARTING: "restarting the backend…",
    BackendState.STOPPED: "the backend stopped",
    BackendState.FAILED: "the backend failed",
}


@dataclass(frozen=True)
class Failure:
    """The last job that failed, and why, in one line."""

    job_id: str
    reason: str


class AppState:
    def __init__(self, max_events: int = 500) -> None:
        self._lock = threading.Lock()
        self._listeners: dict[str, list[Listener]] = {}
        self._events: deque[JobLifecycleLogEvent] = deque(maxlen=max_events)
        self.lifecycle = Lifecycle.IDLE
        self.active: ActiveStage | None = None
        self.queue: list[Job] = []
        self.paused: str | None = None
        self.waiting = 0  # queued jobs in all, including those beyond the snapshot
        self.backend = BackendState.STOPPED
        self.backend_detail = ""
        self.failure: Failure | None = None
        self._running_on: dict[str, str] = {}  # job -> the backend of the pool it runs on
        # The job `active` follows (the lifecycle's): in a pool another job's steps must not
        # take the running panel over (it flipped between jobs, and Cancel hit the other one).
        self._focus: str | None = None

    @property
    def max_events(self) -> int:
        return self._events.maxlen or 0

    def subscribe(self, topic: str, listener: Listener) -> Callable[[], None]:
        """Topics: events, lifecycle, active, queue, backend."""
        with self._lock:
            self._listeners.setdefault(topic, []).append(listener)

        def unsubscribe() -> None:
            with self._lock:
                if listener in self._listeners.get(topic, []):
                    self._listeners[topic].remove(listener)

        return unsubscribe

    def _notify(self, topic: str) -> None:
        with self._lock:
            listeners = list(self._listeners.get(topic, []))
        for listener in listeners:
            try:
                listener(topic)
            except Exception:
                log.exception("AppState listener for %r failed", topic)

    def recent_events(self, job_id: str | None = None) -> list[JobLifecycleLogEvent]:
        with self._lock:
            events = list(self._events)
        return [e for e in events if job_id is None or e.job_id == job_id]

    def on_event(self, event: JobLifecycleLogEvent) -> None:
        """The EventBus subscriber: keep the buffer, follow the active stage and the backend."""
        with self._lock:
            self._events.append(event)
        self._notify("events")
        state = STATE_OF_BACKEND_KIND.get(event.kind)
        if isinstance(event.data, JobStartedData) and event.job_id:
            self._running_on[event.job_id] = event.data.backend
            while len(self._running_on) > 100:  # the jobs of a pool's backends, and no more
                del self._running_on[next(iter(self._running_on))]
        if state is not None:
            self.backend = state
            self.backend_detail = event.data.detail if isinstance(event.data, BackendData) else ""
            self._notify("backend")
            active = self.active
            on = event.data.backend if isinstance(event.data, BackendData) else "default"
            if (
                active is not None
                and state in BACKEND_DOWN
                and not active.note
                and self._running_on.get(active.job_id, "default") == on
            ):
                # Its steps so far were counted by a backend that is not there any more (a
                # crash, or an owner that died and is being taken over).
                self.active = ActiveStage(
                    active.job_id,
                    active.stage,
                    active.image_index,
                    active.total,
                    note=BACKEND_DOWN[state],
                )
                self._notify("active")
        elif self._focus is not None and event.job_id != self._focus:
            return
        elif event.kind == EventKind.STAGE_STARTED and event.job_id and event.stage != "setup":
            self.active = ActiveStage(event.job_id, event.stage, event.image_index, event.total)
            self._notify("active")
        elif isinstance(event.data, RecoveryData) and event.job_id:
            # The steps counted so far were the dead attempt's: not shown as if still running.
            r = event.data
            note = RECOVERY_NOTES.get(r.step, r.step.replace("_", " "))
            note += f" (attempt {r.attempt})" if r.attempt else ""
            self.active = ActiveStage(
                event.job_id, event.stage, event.image_index, event.total, note=note
            )
            self._notify("active")
        elif isinstance(event.data, ProgressData) and event.job_id:
            p = event.data
            self.active = ActiveStage(
                event.job_id, event.stage, event.image_index, event.total, p.step, p.steps, p.eta
            )
            self._notify("active")

    def set_lifecycle(self, lifecycle: Lifecycle, active_job: str | None) -> None:
        self.lifecycle = lifecycle
        self._focus = active_job
        if active_job is None:
            self.active = None
        elif self.active is None or self.active.job_id != active_job:
            self.active = ActiveStage(active_job)
        self._notify("lifecycle")
        self._notify("active")

    def set_queue(self, jobs: list[Job], paused: str | None, waiting: int) -> None:
        self.queue, self.paused, self.waiting = jobs, paused, waiting
        self._notify("queue")

    def set_error(self, job_id: str | None, reason: str | None) -> None:
        self.failure = Failure(job_id, reason or "failed") if job_id else None
