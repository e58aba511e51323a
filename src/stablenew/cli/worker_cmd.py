"""`stablenew worker`: own the home and run queued jobs until stopped, logging as a service.

Its output is a service log: one plain line per job start and end, per pause and resume, per
backend state change, per recovery step and warning, each stamped with the event's time (UTC).
The lines come from the store's event log, so a pause or a cancel made from another shell is
logged too. `--json` writes the same as NDJSON, one document per line.
"""

from __future__ import annotations

import os
import signal
import threading
from types import FrameType
from typing import Any

import typer

from stablenew.app.backend_info import backend_kind
from stablenew.app.events import FINISHED_KINDS, EventKind, JobLifecycleLogEvent
from stablenew.app.services import Services
from stablenew.app.views import EventView, job_record
from stablenew.cli.common import (
    backend_option,
    give_up_starting,
    json_option,
    on_stop_signals,
    set_from_signal,
)
from stablenew.cli.output import out
from stablenew.cli.trail import SERVICE_KINDS, describe, stamped
from stablenew.errors import StableNewError

POLL = 0.5  # seconds between reads of the store's log when nothing in this process stirs


def worker(
    ctx: typer.Context,
    backend: str | None = backend_option(),
    json_out: bool = json_option(),
) -> None:
    """Run queued jobs until stopped (Ctrl+C, SIGTERM or SIGHUP); a running job is re-queued to
    resume. Logs one line per job start and end, pause, resume and backend change. A home has
    one worker: a second one refuses, naming the first."""
    out.json = json_out
    services = ctx.obj.services(backend_url=backend)
    log = ServiceLog(services)
    started = False
    stopped_by = 0

    def on_signal(signum: int, frame: FrameType | None = None) -> None:
        nonlocal stopped_by
        if not started:
            give_up_starting(signum)  # still starting the backend: give up on it now
        stopped_by = signum
        set_from_signal(log.wake)

    previous = signal.signal(signal.SIGINT, on_signal)
    restore = on_stop_signals(on_signal)
    try:
        log.seen = services.jobs.last_seq()
        services.start()
        started = True
        log.banner()
        services.jobs.subscribe(log.on_event)
        while not stopped_by:
            log.flush()
            log.wake.wait(POLL)
            log.wake.clear()
        log.flush()
        log.closing = True  # from here the store closes: lines come straight from the bus
    finally:
        services.close()
        signal.signal(signal.SIGINT, previous)
        restore()
    # A clean stop (Ctrl+C, or SIGTERM/SIGHUP from a service manager) is a success.
    name = signal.Signals(stopped_by).name
    if out.json:
        out.ndjson("worker", {"state": "stopped", "signal": name, "pid": os.getpid()})
    else:
        out.line(f"worker stopped ({name})")


class ServiceLog:
    """Prints the trail of the home's store as it grows."""

    def __init__(self, services: Services) -> None:
        self.services = services
        self.jobs = services.jobs
        self.seen = 0
        self.wake = threading.Event()
        self.closing = False

    def banner(self) -> None:
        backends = self.services.backends
        first = next((b for b in backends if b.url), backends[0])  # a pool's may be down
        url, kind = first.url, backend_kind(first)
        if out.json:
            state: dict[str, object] = {
                "state": "running",
                "backend": url,
                "backend_kind": kind,
                "pid": os.getpid(),
            }
            if len(backends) > 1:
                state["backends"] = {b.name: b.url for b in backends}
            out.ndjson("worker", state)
            return
        # Tests and scripts read the URL as the fourth word of this first line.
        out.line(f"worker running against {url}; {kind or 'backend'}; Ctrl+C to stop")
        if len(backends) > 1:
            for b in backends:
                failed = self.services.start_failures.get(b.name, "").splitlines()
                where = b.url or "did not start" + (f": {failed[0]}" if failed else "")
                out.line(f"  backend {b.name}: {where}")

    def on_event(self, event: JobLifecycleLogEvent) -> None:
        if event.kind not in SERVICE_KINDS:
            return
        if self.closing:
            self.emit(event)  # stopping: the runner hands its job back, the backend stops
        else:
            self.wake.set()

    def flush(self) -> None:
        for event in self.jobs.events_since(self.seen):
            self.seen = event.store_seq or self.seen
            if event.kind in SERVICE_KINDS:
                self.emit(event)

    def emit(self, event: JobLifecycleLogEvent) -> None:
        if out.json:
            extra: dict[str, Any] = {}
            if event.job_id and event.kind in (EventKind.JOB_STARTED, *FINISHED_KINDS):
                job = self._job(event.job_id)
                if job is not None:
                    extra["job"] = job
            out.ndjson("event", EventView.of(event).model_dump(mode="json"), **extra)
            return
        parts = describe(event, self._images, pool=len(self.services.backends) > 1)
        if parts is not None:
            out.line(*stamped(event, parts))

    def _images(self, job_id: str) -> int | None:
        if self.closing:
            return None  # the store may be closed already
        try:
            return self.jobs.get_job(job_id).spec.images
        except StableNewError:  # removed meanwhile
            return None

    def _job(self, job_id: str) -> dict[str, Any] | None:
        if self.closing:
            return None
        try:
            return job_record(self.jobs.get_job(job_id))
        except StableNewError:
            return None
