"""Assembling StableNew: one place that builds and wires every part, and takes it down again.

Doors (CLI, GUI, API) -> controllers -> queue -> pipeline -> webui; events flow back through the
EventBus into AppState, the JSONL log and the store's event log. Doors see the controllers, the
intents and AppState; everything else here is private.

A process either owns the home (`start()`: it takes the home lock, then runs the JobRunner and
the managed backend) or is its client (`attach()`: it follows the owner's event log in the store
and acts through the queue). A client whose owner goes away takes the home over, so the jobs it
waits for still run.
"""

from __future__ import annotations

import dataclasses
import threading
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from stablenew.app.catalog import Catalog
from stablenew.app.controllers import (
    BackendController,
    JobExecutionController,
    PipelineController,
)
from stablenew.app.intents import Intents
from stablenew.app.previews import PreviewBoard
from stablenew.app.state import AppState
from stablenew.errors import BackendStartError, HomeOwnedError
from stablenew.jobs.cancel import CancelToken
from stablenew.jobs.execution import CheckpointSaver
from stablenew.jobs.job import Job
from stablenew.jobs.outcome import JobOutcome
from stablenew.jobs.status import BackendState, JobStatus
from stablenew.observe.events import (
    BACKEND_KIND,
    PID,
    BackendData,
    EventBus,
    EventKind,
    JobLifecycleLogEvent,
    RecoveryData,
)
from stablenew.observe.jsonl import JsonlSink
from stablenew.pipeline.runner import PipelineRunner
from stablenew.pipeline.settings import PipelineSettings
from stablenew.queue.home import HomeLock, Owner
from stablenew.queue.runner import JobRunner
from stablenew.queue.store import JobStore
from stablenew.webui.breaker import BreakerState
from stablenew.webui.client import Health, Timeouts, WebUIClient
from stablenew.webui.process import LaunchConfig, WebUIProcessManager
from stablenew.webui.recovery import RecoveringBackend, RecoveryPolicy

# Kinds that stay in this process: live progress, the app's own lifecycle, the GUI's draft.
LOCAL_ONLY = {
    EventKind.PROGRESS,
    EventKind.LIFECYCLE,
    EventKind.ADD_TO_JOB,
    EventKind.ADD_TO_JOB_NOOP,
}
FOLLOW_INTERVAL = 0.1  # seconds between reads of the owner's event log


class Role(StrEnum):
    NONE = "none"  # neither: a one-shot command (queue list, history)
    OWNER = "owner"
    CLIENT = "client"


@dataclass
class ServiceConfig:
    home: Path
    database: Path
    log_dir: Path
    launch: LaunchConfig
    pipeline: PipelineSettings = field(default_factory=PipelineSettings)
    policy: RecoveryPolicy = field(default_factory=RecoveryPolicy)
    timeouts: Timeouts = field(default_factory=Timeouts)
    auth: tuple[str, str] | None = None
    wildcards_dir: Path | None = None
    max_events: int = 500


class Services:
    def __init__(self, config: ServiceConfig) -> None:
        if config.pipeline.inputs_dir is None:  # the home's input store, wherever it is
            config.pipeline = dataclasses.replace(
                config.pipeline, inputs_dir=config.home / "inputs"
            )
        self.config = config
        self._bus = EventBus()
        self.state = AppState(config.max_events)
        self._bus.subscribe(self.state.on_event)
        self._jsonl = JsonlSink(config.log_dir / "events.jsonl")
        self._bus.subscribe(self._log)
        self._store = JobStore(config.database)
        self._bus.subscribe(self._to_store)
        self._home = HomeLock(config.home)
        self._manager = WebUIProcessManager(
            config.launch,
            probe=self._probe,
            on_state=self._on_backend_state,
            on_breaker=self._on_breaker,
        )
        self._client: WebUIClient | None = None
        self._probes: dict[str, WebUIClient] = {}
        self._runner: JobRunner | None = None
        self._pipeline: PipelineRunner | None = None
        self._follower: threading.Thread | None = None
        self._closing = threading.Event()
        self._role_lock = threading.Lock()
        self.role = Role.NONE
        self.jobs = JobExecutionController(
            self._store, self._bus, self.state, config.pipeline.output_root
        )
        self.pipeline_controller = PipelineController(self.state, self._bus, self.jobs)
        self.backend = BackendController(self._manager, self._the_client, self._home)
        self.intents = Intents(config.wildcards_dir, config.pipeline)
        self.catalog = Catalog(self._catalog_client)
        self.previews = PreviewBoard()
        self._bus.subscribe(self.previews.on_event)
        self.jobs.validate = self.catalog.check

    # -- events --------------------------------------------------------------------------------

    def _log(self, event: JobLifecycleLogEvent) -> None:
        if event.pid == PID:  # what another process wrote is in its own lines already
            self._jsonl(event)

    def _to_store(self, event: JobLifecycleLogEvent) -> None:
        """The owner's log is the store's: every lifecycle event, one seq across processes."""
        if event.persisted or event.kind in LOCAL_ONLY or event.pid != PID:
            return
        try:
            self._store.append_events([event])
        except Exception as exc:  # observing must never break the job; the JSONL still has it
            self._jsonl(
                JobLifecycleLogEvent(
                    EventKind.WARNING, f"event not recorded in the store: {exc}", source="app"
                )
            )

    # -- the backend ---------------------------------------------------------------------------

    def _probe(self, url: str) -> Health:
        probe = self._probes.get(url)
        if probe is None:  # one client per URL: probing runs every 50 ms while starting
            probe = WebUIClient(url, auth=self.config.auth, timeouts=self.config.timeouts)
            self._probes[url] = probe
        return probe.health()

    def _catalog_client(self) -> WebUIClient | None:
        """The backend to ask for its lists: ours when we own the home, else the owner's."""
        try:
            return self._the_client()
        except BackendStartError:  # no backend known yet (not started, owner not published)
            return None

    def _on_backend_state(self, state: BackendState, detail: str) -> None:
        message = f"backend {state.value.lower()}" + (f": {detail}" if detail else "")
        active = self.state.active
        self._bus.emit(
            BACKEND_KIND[state],
            message,
            source="backend",
            job_id=active.job_id if active else None,
            stage=active.stage if active else None,
            data=BackendData(state, detail),
        )
        if state == BackendState.READY:
            self._home.set_backend_url(self._manager.known_url)
            self.catalog.invalidate()

    def _on_breaker(self, state: BreakerState, detail: str) -> None:
        active = self.state.active
        self._bus.emit(
            EventKind.RECOVERY,
            f"crash-loop breaker {state.value.replace('_', '-')}: {detail}",
            source="backend",
            job_id=active.job_id if active else None,
            stage=active.stage if active else None,
            data=RecoveryData(f"breaker_{state.value}", cause=detail),
        )

    def _the_client(self) -> WebUIClient:
        if self._client is None:
            url = self._manager.url if self.role == Role.OWNER else self._owner_url()
            self._client = WebUIClient(url, auth=self.config.auth, timeouts=self.config.timeouts)
        return self._client

    def _owner_url(self) -> str:
        owner = self._home.owner()
        if owner is None or owner.backend_url is None:
            raise BackendStartError("the home's owner has not published its backend's URL yet")
        return owner.backend_url

    # -- owning the home -----------------------------------------------------------------------

    def owner(self) -> Owner | None:
        """Who owns the home now (this process included)."""
        return self._home.owner()

    def start(self, run_queue: bool = True, timeout: float | None = None) -> None:
        """Own the home: take its lock, bring the backend up, start draining the queue
        (`run_queue=False`: the backend only, as `doctor` needs)."""
        with self._role_lock:
            if self.role == Role.OWNER:
                return
            if not self._home.try_acquire():
                owner = self._home.owner()
                who = owner.describe() if owner else "another process"
                raise HomeOwnedError(f"this home ({self.config.home}) is owned by {who}")
            self.role = Role.OWNER
        self._manager.reap_stale()  # only the new owner may: no one else touches a backend
        self._manager.start(timeout)
        if run_queue:
            self._run_queue()

    def _run_queue(self) -> None:
        backend = RecoveringBackend(self._the_client(), self._manager, self.config.policy)
        self._pipeline = PipelineRunner(
            backend, self._bus, self.config.pipeline, previews=self.previews.put
        )
        self._runner = JobRunner(
            self._store,
            self._execute,
            self._bus,
            gate=self.backend,
            max_attempts=self.config.policy.max_attempts,
        )
        self.jobs.runner = self._runner
        self._runner.start()
        self.jobs.refresh_queue()

    def attach(self) -> None:
        """Be a client of the home's owner: follow its event log; take over if it goes."""
        with self._role_lock:
            if self.role != Role.NONE:
                return
            self.role = Role.CLIENT
        seen = self._store.last_seq()
        self._replay_current()
        self._follower = threading.Thread(
            target=self._follow, args=(seen,), name="owner-follower", daemon=True
        )
        self._follower.start()
        self.jobs.refresh_queue()

    def open(self) -> Role:
        """Own the home if nobody does, else be its owner's client."""
        try:
            self.start()
        except HomeOwnedError:
            self.attach()
        return self.role

    def _replay_current(self) -> None:
        """What a client that attaches mid-job needs to show: the backend's state, the running
        job's trail so far."""
        backend = [
            e
            for e in self._store.events_since(max(0, self._store.last_seq() - 2000))
            if e.kind in BACKEND_KIND.values()
        ]
        if backend:
            self._bus.publish(backend[-1])
        for job in self._store.list_jobs([JobStatus.RUNNING], limit=1):
            trail = self._store.events_since(0, job_id=job.id)
            started = [i for i, e in enumerate(trail) if e.kind == EventKind.JOB_STARTED]
            for event in trail[started[-1] if started else 0 :]:
                self._bus.publish(event)

    def _follow(self, seen: int) -> None:
        while not self._closing.wait(FOLLOW_INTERVAL):
            try:
                for event in self._store.events_since(seen, limit=1000):
                    seen = event.store_seq or seen
                    if event.pid != PID:
                        self._bus.publish(event)
                if self._home.try_acquire():
                    self._take_over()
                    return
            except Exception as exc:  # a busy store: the next turn tries again
                self._bus.emit(EventKind.WARNING, f"following the owner: {exc}", source="app")

    def _take_over(self) -> None:
        self._bus.emit(
            EventKind.WARNING,
            "The home's owner is gone: this process runs the queue and the backend now.",
            source="app",
        )
        with self._role_lock:
            self.role = Role.OWNER
            self._client = None
        try:
            self._manager.reap_stale()
            self._manager.start()
        except BackendStartError as exc:
            self._bus.emit(EventKind.WARNING, f"the backend did not start: {exc}", source="app")
        self._run_queue()

    # -- running -------------------------------------------------------------------------------

    def _execute(self, job: Job, token: CancelToken, saver: CheckpointSaver) -> JobOutcome:
        assert self._pipeline is not None
        return self._pipeline(job, token, saver)

    def close(self, grace: float = 5.0) -> None:
        """Stop the runner (a running job is re-queued to resume), then the backend."""
        self._closing.set()
        if self._runner is not None:
            self._runner.stop(timeout=self.config.policy.cancel_grace + grace + 10)
        if self._follower is not None:
            self._follower.join(timeout=5)
        self.jobs.close()
        if self._pipeline is not None:
            self._pipeline.backend.close()
        if self.role == Role.OWNER:
            self._manager.stop(grace)
        for client in [self._client, *self._probes.values()]:
            if client is not None:
                client.close()
        self._home.release()
        self._store.close()
        self._jsonl.close()
