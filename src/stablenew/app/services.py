"""Assembling StableNew: one place that builds and wires every part, and takes it down again.

Doors (CLI, GUI, API) -> controllers -> queue -> pipeline -> webui; events flow back through the
EventBus into AppState, the JSONL log and the store's event log. Doors see the controllers, the
intents and AppState; everything else here is private.

A process either owns the home (`start()`: it takes the home lock, then runs a JobRunner for each
backend of its pool and the managed backends) or is its client (`attach()`: it follows the
owner's event log in the store and acts through the queue). A client whose owner goes away takes
the home over, so the jobs it waits for still run.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Literal

from stablenew.app.catalog import Catalog, CatalogMember
from stablenew.app.controllers import (
    BackendController,
    BackendStatus,
    JobExecutionController,
    PipelineController,
)
from stablenew.app.intents import Intents
from stablenew.app.live_progress import ProgressFollower, ProgressSharer
from stablenew.app.placement import PoolPolicy
from stablenew.app.pool import BackendConfig, BackendPool, Member
from stablenew.app.previews import PreviewBoard
from stablenew.app.state import AppState
from stablenew.app.webhooks import Hook, WebhookDispatcher
from stablenew.errors import BackendError, BackendStartError, HomeOwnedError, StableNewError
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
from stablenew.pipeline.settings import PipelineSettings
from stablenew.queue.home import HomeLock, Owner
from stablenew.queue.store import BackendReport, JobStore
from stablenew.webui.breaker import BreakerState
from stablenew.webui.client import Health, Timeouts, WebUIClient
from stablenew.webui.process import LaunchConfig, WebUIProcessManager
from stablenew.webui.recovery import RecoveryPolicy

# Kinds that stay in this process: live progress (shared with clients another way, see
# app/live_progress.py), the app's own lifecycle, the GUI's draft.
LOCAL_ONLY = {
    EventKind.PROGRESS,
    EventKind.LIFECYCLE,
    EventKind.ADD_TO_JOB,
    EventKind.ADD_TO_JOB_NOOP,
}
FOLLOW_INTERVAL = 0.1  # seconds between reads of the owner's event log
PUBLISH_INTERVAL = 0.5  # seconds: the owner writes its backends' states at most this often
WEBHOOK_DRAIN = 2.0  # seconds a closing owner gives the deliveries its last jobs made due


class Role(StrEnum):
    NONE = "none"  # neither: a one-shot command (queue list, history)
    OWNER = "owner"
    CLIENT = "client"


@dataclass
class ServiceConfig:
    home: Path
    database: Path
    log_dir: Path
    launch: LaunchConfig | None = None  # a single backend, named "default" ...
    backends: list[BackendConfig] = field(default_factory=list)  # ... or a pool
    pipeline: PipelineSettings = field(default_factory=PipelineSettings)
    policy: RecoveryPolicy = field(default_factory=RecoveryPolicy)
    pool: PoolPolicy = field(default_factory=PoolPolicy)
    timeouts: Timeouts = field(default_factory=Timeouts)
    auth: tuple[str, str] | None = None
    wildcards_dir: Path | None = None
    unresolved: Literal["error", "drop", "keep"] = "error"
    max_events: int = 500
    # Delivered by whichever process owns the home and runs the queue (worker, run, GUI,
    # serve), from the store's event log; `callbacks`: agent-scheduler's too, with no hooks.
    webhooks: list[Hook] = field(default_factory=list)
    callbacks: bool = False

    def __post_init__(self) -> None:
        if not self.backends:
            if self.launch is None:
                raise ValueError("a ServiceConfig needs a backend (launch) or a pool (backends)")
            self.backends = [BackendConfig("default", self.launch, auth=self.auth)]


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
        self._probes: dict[str, WebUIClient] = {}
        self._follower: threading.Thread | None = None
        self._publisher: threading.Thread | None = None
        self._closing = threading.Event()
        self._role_lock = threading.Lock()
        self._publishing = threading.Lock()
        self.webhooks: WebhookDispatcher | None = None  # while this process runs the queue
        self.on_webhook_attempt: Callable[[bool], None] | None = None  # metrics, when served
        self.start_failures: dict[str, str] = {}  # a pool's backends that did not start: why
        self.role = Role.NONE
        self.jobs = JobExecutionController(
            self._store, self._bus, self.state, config.pipeline.output_root
        )
        self.pipeline_controller = PipelineController(self.state, self._bus, self.jobs)
        self._pool = BackendPool([self._member(b) for b in config.backends], config.pool)
        self.backends = [m.controller for m in self._pool.members]
        self.backend = self.backends[0]  # the one backend of a pool of one; a pool's first
        self.intents = Intents(config.wildcards_dir, config.pipeline, config.unresolved)
        self.catalog = Catalog(
            [
                CatalogMember(m.name, self._catalog_client(m), m.config.labels)
                for m in self._pool.members
            ]
        )
        self.previews = PreviewBoard()
        self._bus.subscribe(self.previews.on_event)
        self._sharer: ProgressSharer | None = None  # while this process runs the queue
        self._progress_in = ProgressFollower(self._store, self._bus, self.previews)
        self.jobs.validate = self.catalog.check
        self.jobs.inputs = self.intents.inputs

    def _member(self, backend: BackendConfig) -> Member:
        manager = WebUIProcessManager(
            backend.launch,
            probe=lambda url: self._probe(url, backend),
            on_state=lambda state, detail: self._on_backend_state(backend, state, detail),
            on_breaker=lambda state, detail: self._on_breaker(backend, state, detail),
        )
        member = Member(backend, manager)
        member.controller = BackendController(
            manager,
            lambda: self._client_of(member),
            self._home,
            name=backend.name,
            labels=backend.labels,
        )
        return member

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

    def _probe(self, url: str, backend: BackendConfig) -> Health:
        probe = self._probes.get(url)
        if probe is None:  # one client per URL: probing runs every 50 ms while starting
            probe = WebUIClient(url, auth=backend.auth, timeouts=self.config.timeouts)
            self._probes[url] = probe
        return probe.health()

    def _catalog_client(self, member: Member) -> Callable[[], WebUIClient | None]:
        """How to ask a backend for its lists: ours when we own the home, else the owner's."""

        def client() -> WebUIClient | None:
            try:
                return self._client_of(member)
            except BackendStartError:  # not known yet (not started, owner not published)
                return None

        return client

    def _on_backend_state(self, backend: BackendConfig, state: BackendState, detail: str) -> None:
        which = "" if self._pool_of_one else f" {backend.name}"
        message = f"backend{which} {state.value.lower()}" + (f": {detail}" if detail else "")
        member = next(m for m in self._pool.members if m.name == backend.name)
        if state == BackendState.READY and member.recovering is not None:
            # Read before READY is told: every door showing the pool then shows the model the
            # new process loaded (the runner asks only when it picks, not while paused or idle).
            member.recovering.read_loaded_model()
        job_id, stage = self._job_on(backend)
        self._bus.emit(
            BACKEND_KIND[state],
            message,
            source="backend",
            job_id=job_id,
            stage=stage,
            data=BackendData(state, detail, backend.name),
        )
        if state == BackendState.READY:
            with self._publishing:  # a pool's backends get ready side by side: last one wins
                self._home.set_backend_urls(
                    {m.name: url for m in self._pool.members if (url := m.manager.known_url)}
                )
            self.catalog.invalidate(backend.name)

    def _on_breaker(self, backend: BackendConfig, state: BreakerState, detail: str) -> None:
        job_id, stage = self._job_on(backend, last=state == BreakerState.OPEN)
        which = "" if self._pool_of_one else f" of backend {backend.name}"
        self._bus.emit(
            EventKind.RECOVERY,
            f"crash-loop breaker{which} {state.value.replace('_', '-')}: {detail}",
            source="backend",
            job_id=job_id,
            stage=stage,
            data=RecoveryData(f"breaker_{state.value}", cause=detail, backend=backend.name),
        )

    def _job_on(self, backend: BackendConfig, last: bool = False) -> tuple[str | None, str | None]:
        """The job (and its stage) a backend's state change belongs to: the one its own runner
        runs (the app's active job may run on another backend of the pool); `last`: else the
        one it ran last (a breaker opens at the start after the job whose crashes it counted)."""
        member = next(m for m in self._pool.members if m.name == backend.name)
        runner = member.runner
        job_id = runner.current_job if runner is not None else None
        if job_id is None and last and runner is not None:
            job_id = runner.last_job
        active = self.state.active
        stage = active.stage if active is not None and active.job_id == job_id else None
        return job_id, stage

    @property
    def _pool_of_one(self) -> bool:
        return len(self.config.backends) == 1

    def _client_of(self, member: Member) -> WebUIClient:
        """A client for a backend: ours when we own the home, else at the owner's URL for it."""
        if member.client is None:
            url: str | None = member.manager.url if self.role == Role.OWNER else None
            if url is None and not member.manager.managed:
                # Attached: its URL is the configured one, credentials and all (the owner
                # publishes it masked).
                url = member.manager.known_url
            if url is None:
                owner = self._home.owner()
                url = owner.backend_urls.get(member.name) if owner is not None else None
            if url is None:
                raise BackendStartError("the home's owner has not published its backend's URL yet")
            member.client = WebUIClient(url, auth=member.config.auth, timeouts=self.config.timeouts)
        return member.client

    def auth_of(self, backend: str) -> tuple[str, str] | None:
        """The credentials a backend of the pool is reached with."""
        return next(m.config.auth for m in self._pool.members if m.name == backend)

    def backend_statuses(self) -> list[BackendStatus]:
        """Every backend of the pool: as this process drives it (owner), as the owner last
        published it (a client), or, when no owner runs, as its URL answers (read-only:
        nothing is started)."""
        if self.role == Role.OWNER:
            return [b.status() for b in self.backends]
        owner = self._home.owner()
        reports = self._store.backend_reports() if owner is not None else {}
        statuses = []
        for controller, member in zip(self.backends, self._pool.members, strict=True):
            report = reports.get(member.name)
            if report is None:
                statuses.append(self._probed(member, controller.managed, owner))
                continue
            statuses.append(
                BackendStatus(
                    name=member.name,
                    labels=sorted(member.config.labels),
                    state=report.state,
                    url=report.url,
                    managed=controller.managed,
                    loaded_model=report.loaded_model,
                    current_job=report.current_job,
                    held=report.held,
                    restarts=report.restarts,
                )
            )
        return statuses

    def _probed(self, member: Member, managed: bool, owner: Owner | None) -> BackendStatus:
        """A backend no owner reports on: asked at its URL (an attached one's is in the config,
        with its credentials; the owner's published one is masked)."""
        url = member.manager.known_url if not managed else None
        if url is None and owner is not None:
            url = owner.backend_urls.get(member.name)
        state, loaded = BackendState.STOPPED, None
        if url is not None:
            probe = WebUIClient(url, auth=member.config.auth, timeouts=Timeouts(probe=3))
            try:
                if probe.health() is Health.OK:
                    state = BackendState.READY
                    loaded = str(probe.get_options().get("sd_model_checkpoint") or "") or None
                else:
                    state = BackendState.FAILED
            except BackendError:
                state = BackendState.FAILED
            finally:
                probe.close()
        return BackendStatus(
            name=member.name,
            labels=sorted(member.config.labels),
            state=state,
            url=url,
            managed=managed,
            loaded_model=loaded,
            current_job=None,
            held=None,
            restarts=0,
        )

    def _publish(self) -> None:
        """The owner's side of `backend_statuses`: what it knows of its backends, in the store
        for clients, written when it changes and at most every PUBLISH_INTERVAL."""
        last: list[BackendReport] | None = None
        failed = ""
        while True:
            reports = [
                BackendReport(
                    name=s.name,
                    state=s.state,
                    url=s.url,
                    loaded_model=s.loaded_model,
                    current_job=s.current_job,
                    held=s.held,
                    restarts=s.restarts,
                )
                for s in (b.status() for b in self.backends)
            ]
            if reports != last:
                try:
                    self._store.publish_backends(reports)
                    last, failed = reports, ""
                except StableNewError as exc:  # a busy or full store: said once, tried again
                    if str(exc) != failed:
                        failed = str(exc)
                        self._bus.emit(
                            EventKind.WARNING,
                            f"the backends' states are not published to clients: {exc}",
                            source="app",
                        )
            if self._closing.wait(PUBLISH_INTERVAL):
                return

    def _start_publishing(self) -> None:
        if self._publisher is None:
            self._publisher = threading.Thread(
                target=self._publish, name="backend-publisher", daemon=True
            )
            self._publisher.start()

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
        self._start_publishing()
        self._start_backends(timeout)
        if run_queue:
            self._run_queue()

    def _start_backends(self, timeout: float | None = None) -> None:
        """Reap what a dead owner left (only the new owner may: no one else touches a
        backend), then start every backend of the pool side by side; a pool of one that does
        not start is an error, a pool goes on with the backends that did."""
        members = self._pool.members
        for member in members:
            member.manager.reap_stale()
        if len(members) == 1:
            members[0].manager.start(timeout)
            return
        failures: dict[str, BaseException] = {}

        def start(member: Member) -> None:
            try:
                member.manager.start(timeout)
            except BackendStartError as exc:
                failures[member.name] = exc

        threads = [
            threading.Thread(target=start, args=(m,), name=f"start-{m.name}") for m in members
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if len(failures) == len(members):
            raise next(iter(failures.values()))
        for name, exc in failures.items():
            self.start_failures[name] = str(exc)
            self._bus.emit(
                EventKind.WARNING, f"backend {name} did not start: {exc}", source="backend"
            )

    def _run_queue(self) -> None:
        if self._sharer is None:
            self._sharer = ProgressSharer(self._store, self._bus, self.previews)
            self._bus.subscribe(self._sharer.on_event)
            self._sharer.start()
        runners = self._pool.run(
            self._store, self._bus, self.config.pipeline, self.config.policy, self.previews.put
        )
        self.jobs.runners = runners
        for runner in runners:
            runner.start()
        # The owner hears its clients too: a `queue add`, `cancel` or `move` from a shell
        # reaches this process's views (the desktop app's queue) as its own events do.
        self._follower = threading.Thread(
            target=self._follow,
            args=(self._store.last_seq(), False),
            name="clients-follower",
            daemon=True,
        )
        self._follower.start()
        self.jobs.refresh_queue()
        if (self.config.webhooks or self.config.callbacks) and self.webhooks is None:
            self.webhooks = WebhookDispatcher(
                self.jobs,
                self.config.webhooks,
                self.config.home / "webhooks.seq",
                on_attempt=self._webhook_attempt,
            )
            self.webhooks.start()

    def _webhook_attempt(self, delivered: bool) -> None:
        if self.on_webhook_attempt is not None:
            self.on_webhook_attempt(delivered)

    def attach(self) -> None:
        """Be a client of the home's owner: follow its event log; take over if it goes."""
        with self._role_lock:
            if self.role != Role.NONE:
                return
            self.role = Role.CLIENT
        self._bus.subscribe(self._progress_in.on_event)
        seen = self._store.last_seq()
        self._replay_current()
        try:  # the running job's current step at once, not at the follower's first turn
            self._progress_in.turn()
        except StableNewError as exc:
            self._bus.emit(EventKind.WARNING, f"reading the owner's progress: {exc}", source="app")
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
        job's trail so far (its current step follows from the owner's shared progress)."""
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

    def _follow(self, seen: int, take_over: bool = True) -> None:
        """Publish here what other processes record in the home's log (the owner's, for a
        client; its clients', for the owner); a client takes over when the owner is gone."""
        said = ""
        while not self._closing.wait(FOLLOW_INTERVAL):
            try:
                for event in self._store.events_since(seen, limit=1000):
                    seen = event.store_seq or seen
                    if event.pid != PID:
                        self._bus.publish(event)
                if take_over:  # a client: the owner's running jobs' steps and previews
                    self._progress_in.turn()
                if take_over and self._home.try_acquire():
                    self._take_over()
                    return
                said = ""
            except Exception as exc:  # a busy store: the next turn tries again
                if str(exc) != said:  # once, not ten times a second
                    said = str(exc)
                    self._bus.emit(
                        EventKind.WARNING, f"reading the home's event log: {exc}", source="app"
                    )

    def _take_over(self) -> None:
        self._bus.emit(
            EventKind.WARNING,
            "The home's owner is gone: this process runs the queue and the backend now.",
            source="app",
        )
        with self._role_lock:
            self.role = Role.OWNER
            for member in self._pool.members:
                member.client = None  # the owner's clients: ours now
        self._start_publishing()
        try:
            self._start_backends()
        except BackendStartError as exc:
            self._bus.emit(EventKind.WARNING, f"the backend did not start: {exc}", source="app")
        if not self._closing.is_set():
            self._run_queue()
            return
        # Closing meanwhile: close() stops what was started. The dead owner's running jobs
        # go back to the queue now, as its runners would have put them (closing re-queues).
        for event in self._store.recover(self.config.policy.max_attempts):
            self._bus.publish(event)

    # -- stopping ------------------------------------------------------------------------------

    def stop_runners(self, grace: float = 5.0) -> None:
        """Stop taking and running jobs; a running job is re-queued to resume at the next start.
        What the store then says about the jobs is final for this process."""
        self._closing.set()
        for runner in self.jobs.runners:
            runner.stop(timeout=self.config.policy.cancel_grace + grace + 10)
        if self._sharer is not None:  # after the runners: the jobs they gave back end here
            self._sharer.stop()

    def close(self, grace: float = 5.0) -> None:
        """Stop the runners (a running job is re-queued to resume), then the backends."""
        self._closing.set()
        follower = self._follower
        if follower is not None:
            # A client's follower may be taking over the home: starting its backends (bounded
            # by their start-up timeout). Let it end first, or it would start runners on the
            # store and backend clients closed below, and leave its backend running.
            follower.join(
                timeout=max(m.manager.config.startup_timeout for m in self._pool.members) + 10
            )
        self.stop_runners(grace)
        if self._follower is not None:
            self._follower.join(timeout=5)
        if self._publisher is not None:
            self._publisher.join(timeout=5)
        if self.webhooks is not None:  # what is not sent by then stays in the outbox
            self.webhooks.close(drain=WEBHOOK_DRAIN)
        self.jobs.close()
        if self.role == Role.OWNER:
            self._pool.stop(grace)
        for client in [*(m.client for m in self._pool.members), *self._probes.values()]:
            if client is not None:
                client.close()
        self._home.release()
        self._store.close()
        self._jsonl.close()
