"""Assembling StableNew: one place that builds and wires every part, and takes it down again.

GUI -> controllers -> queue -> pipeline -> webui; events flow back through the EventBus into
AppState and the JSONL log. The CLI, the GUI and the integration tests all start from here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from stablenew.app.controllers import (
    BackendController,
    JobExecutionController,
    PipelineController,
)
from stablenew.app.state import AppState
from stablenew.jobs.cancel import CancelToken
from stablenew.jobs.job import Job, JobOutcome
from stablenew.observe.events import EventBus, EventKind
from stablenew.observe.jsonl import JsonlSink
from stablenew.pipeline.runner import PipelineRunner
from stablenew.pipeline.settings import PipelineSettings
from stablenew.queue.runner import Checkpoint, JobRunner
from stablenew.queue.store import JobStore
from stablenew.webui.client import Timeouts, WebUIClient
from stablenew.webui.process import (
    BackendStartError,
    BackendState,
    LaunchConfig,
    WebUIProcessManager,
)
from stablenew.webui.recovery import RecoveringBackend, RecoveryPolicy

BACKEND_EVENTS = {
    BackendState.STARTING: EventKind.BACKEND_STARTING,
    BackendState.READY: EventKind.BACKEND_READY,
    BackendState.CRASHED: EventKind.BACKEND_CRASHED,
    BackendState.RESTARTING: EventKind.BACKEND_RESTARTING,
    BackendState.FAILED: EventKind.BACKEND_FAILED,
    BackendState.STOPPING: EventKind.BACKEND_STOPPING,
    BackendState.STOPPED: EventKind.BACKEND_STOPPED,
}


@dataclass
class ServiceConfig:
    database: Path
    log_dir: Path
    launch: LaunchConfig
    pipeline: PipelineSettings = field(default_factory=PipelineSettings)
    policy: RecoveryPolicy = field(default_factory=RecoveryPolicy)
    timeouts: Timeouts = field(default_factory=Timeouts)
    auth: tuple[str, str] | None = None
    max_attempts: int = 3
    max_events: int = 500


class Services:
    def __init__(self, config: ServiceConfig) -> None:
        self.config = config
        self.bus = EventBus()
        self.state = AppState(config.max_events)
        self.bus.subscribe(self.state.on_event)
        self.jsonl = JsonlSink(config.log_dir / "events.jsonl")
        self.bus.subscribe(self.jsonl)
        self.store = JobStore(config.database)
        self.manager = WebUIProcessManager(
            config.launch, probe=self._probe, on_state=self._on_backend_state
        )
        self._client: WebUIClient | None = None
        self._probes: dict[str, WebUIClient] = {}
        self.runner = JobRunner(
            self.store,
            self._execute,
            self.bus,
            backend_ready=self._backend_ready,
            max_attempts=config.max_attempts,
        )
        self.jobs = JobExecutionController(self.store, self.bus, self.state, self.runner)
        self.pipeline_controller = PipelineController(self.state, self.bus, self.jobs)
        self.backend = BackendController(self.manager, lambda: self.client)
        self._pipeline: PipelineRunner | None = None

    # -- the backend ---------------------------------------------------------------------------

    def _probe(self, url: str) -> bool:
        probe = self._probes.get(url)
        if probe is None:  # one client per URL: probing runs every 50 ms while starting
            probe = WebUIClient(url, auth=self.config.auth, timeouts=self.config.timeouts)
            self._probes[url] = probe
        return probe.is_healthy()

    def _on_backend_state(self, state: BackendState, detail: str) -> None:
        message = f"backend {state.value.lower()}" + (f": {detail}" if detail else "")
        self.bus.emit(BACKEND_EVENTS[state], message, source="backend")

    @property
    def client(self) -> WebUIClient:
        if self._client is None:
            self._client = WebUIClient(
                self.manager.url, auth=self.config.auth, timeouts=self.config.timeouts
            )
        return self._client

    def start_backend(self, timeout: float | None = None) -> str:
        return self.manager.start(timeout)

    def _backend_ready(self) -> str | None:
        """Before the next job after a backend death: healthy, restarted, or the reason not."""
        if self.manager.state == BackendState.READY and self._probe(self.manager.url):
            return None
        try:
            if self.manager.managed and self.manager.state != BackendState.FAILED:
                self.manager.restart_and_wait_ready(self.config.policy.restart_timeout)
            else:
                self.manager.start(self.config.policy.restart_timeout)
        except BackendStartError as exc:
            return str(exc).splitlines()[0]
        return None

    # -- running -------------------------------------------------------------------------------

    @property
    def pipeline(self) -> PipelineRunner:
        if self._pipeline is None:
            backend = RecoveringBackend(self.client, self.manager, self.config.policy)
            self._pipeline = PipelineRunner(backend, self.bus, self.config.pipeline)
        return self._pipeline

    def _execute(self, job: Job, token: CancelToken, checkpoint: Checkpoint) -> JobOutcome:
        return self.pipeline(job, token, checkpoint)

    def start(self) -> None:
        """Bring the backend up, then start draining the queue."""
        self.start_backend()
        self.runner.start()
        self.jobs.refresh_queue()

    def close(self, grace: float = 5.0) -> None:
        """Stop the runner (a running job is re-queued to resume), then the backend."""
        self.runner.stop(timeout=self.config.policy.cancel_grace + grace + 10)
        self.jobs.close()
        if self._pipeline is not None:
            self._pipeline.backend.close()
        self.manager.stop(grace)
        for client in [self._client, *self._probes.values()]:
            if client is not None:
                client.close()
        self.store.close()
        self.jsonl.close()
