"""Prometheus metrics of a home's owner: what `/metrics` of `stablenew serve` shows.

Two kinds of figures. Counts that the store already knows (jobs by status, queue depth, the
webhook outbox) and states the controllers hold (backend state, restarts, paused) are read at
scrape time, so they are right after a restart and include what other processes did. Things
that happen (a stage's duration, a recovery step, a webhook attempt, an event-stream client)
are counted as they happen in this process. Each Metrics has its own registry, so several
apps in one process (tests) never share figures.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.registry import Collector

from stablenew.app.controllers import BackendController, JobExecutionController
from stablenew.jobs.status import BackendState, JobStatus
from stablenew.observe.events import (
    EventKind,
    JobLifecycleLogEvent,
    RecoveryData,
    StageFinishedData,
)

CONTENT_TYPE = CONTENT_TYPE_LATEST

# Seconds: a 64x64 test stage takes milliseconds, an SDXL hires pass minutes.
STAGE_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800)


class _StateCollector(Collector):
    """Read at every scrape: the store's counts and the controllers' states."""

    def __init__(self, jobs: JobExecutionController, backends: Sequence[BackendController]) -> None:
        self.jobs = jobs
        self.backends = backends

    def collect(self) -> Iterator[Metric]:
        by_status = GaugeMetricFamily(
            "stablenew_jobs", "Jobs in the store by status", labels=["status"]
        )
        for status in JobStatus:
            by_status.add_metric([status.value], self.jobs.count([status]))
        yield by_status
        yield GaugeMetricFamily(
            "stablenew_queue_depth",
            "Jobs waiting to run (QUEUED)",
            value=self.jobs.count([JobStatus.QUEUED]),
        )
        yield GaugeMetricFamily(
            "stablenew_queue_paused",
            "1 while the queue is paused",
            value=1 if self.jobs.paused() is not None else 0,
        )
        state = GaugeMetricFamily(
            "stablenew_backend_state",
            "Each backend's state (1 for its current one)",
            labels=["backend", "state"],
        )
        restarts = CounterMetricFamily(
            "stablenew_backend_restarts",
            "Restarts of each managed backend since this process started it",
            labels=["backend"],
        )
        held = GaugeMetricFamily(
            "stablenew_backend_held",
            "1 while a backend's crash-loop breaker keeps it out of the pool",
            labels=["backend"],
        )
        for backend in self.backends:
            current = backend.state
            for s in BackendState:
                state.add_metric([backend.name, s.value], 1 if s == current else 0)
            restarts.add_metric([backend.name], backend.restarts)
            held.add_metric([backend.name], 1 if backend.runtime.held() else 0)
        yield state
        yield restarts
        yield held
        outbox = GaugeMetricFamily(
            "stablenew_webhook_outbox",
            "Webhook deliveries in the durable outbox by state",
            labels=["state"],
        )
        for name, value in self.jobs.outbox_counts().items():
            outbox.add_metric([name], value)
        yield outbox


class Metrics:
    def __init__(self, jobs: JobExecutionController, backends: Sequence[BackendController]) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.registry.register(_StateCollector(jobs, backends))
        self.stage_seconds = Histogram(
            "stablenew_stage_duration_seconds",
            "Duration of one image's stage, by the backend that made it",
            ["stage", "backend"],
            buckets=STAGE_BUCKETS,
            registry=self.registry,
        )
        self.recoveries = Counter(
            "stablenew_recoveries",
            "Recovery steps (crash_detected, restart, retry, breaker_open, gave_up, ...)",
            ["step", "backend"],
            registry=self.registry,
        )
        self.jobs_finished = Counter(
            "stablenew_jobs_finished",
            "Jobs this process finished, by final status",
            ["status"],
            registry=self.registry,
        )
        self.webhook_attempts = Counter(
            "stablenew_webhook_attempts",
            "Webhook delivery attempts by outcome (delivered, failed)",
            ["outcome"],
            registry=self.registry,
        )
        self.sse_clients = Gauge(
            "stablenew_event_stream_clients",
            "Clients connected to the event stream",
            registry=self.registry,
        )
        self._unsubscribe: Callable[[], None] = jobs.subscribe(self.on_event)

    def on_event(self, event: JobLifecycleLogEvent) -> None:
        """Subscribed to the bus: cheap, and never raises into the job (the bus guards it)."""
        if event.kind == EventKind.PROGRESS:
            return
        data = event.data
        if isinstance(data, StageFinishedData) and event.stage and not data.resumed:
            self.stage_seconds.labels(event.stage, data.backend).observe(data.duration_s)
        elif isinstance(data, RecoveryData):
            self.recoveries.labels(data.step, data.backend).inc()
        elif event.source == "runner" and event.status is not None and event.status.finished:
            self.jobs_finished.labels(event.status.value).inc()

    def webhook_attempt(self, delivered: bool) -> None:
        self.webhook_attempts.labels("delivered" if delivered else "failed").inc()

    def render(self) -> bytes:
        """The Prometheus text exposition."""
        return generate_latest(self.registry)

    def close(self) -> None:
        self._unsubscribe()
