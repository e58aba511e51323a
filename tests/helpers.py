"""Test helpers shared across suites."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from stablenew.observe.events import EventKind, JobLifecycleLogEvent


class Subscribable(Protocol):
    def subscribe(self, subscriber: Callable[[JobLifecycleLogEvent], None]) -> object: ...


class Waiter:
    """Records every event on a bus (or a controller) and waits for one (no polling, no sleeps)."""

    def __init__(self, bus: Subscribable) -> None:
        self.events: list[JobLifecycleLogEvent] = []
        self._cond = threading.Condition()
        bus.subscribe(self._on)

    def _on(self, event: JobLifecycleLogEvent) -> None:
        with self._cond:
            self.events.append(event)
            self._cond.notify_all()

    def wait(
        self,
        kind: EventKind,
        job_id: str | None = None,
        timeout: float = 30,
        where: object = None,
    ) -> JobLifecycleLogEvent:
        def found() -> JobLifecycleLogEvent | None:
            for e in self.events:
                if e.kind == kind and job_id in (None, e.job_id) and (where is None or where(e)):  # type: ignore[operator]
                    return e
            return None

        with self._cond:
            assert self._cond.wait_for(lambda: found() is not None, timeout), (
                f"no {kind} for {job_id}"
            )
            return found()  # type: ignore[return-value]

    def kinds(self, job_id: str | None = None) -> list[str]:
        return [e.kind.value for e in self.events if job_id is None or e.job_id == job_id]


ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Worker:
    proc: subprocess.Popen[str]
    url: str  # the backend it drives


def start_worker(home: Path, *args: str, drain: bool = True) -> Worker:
    """`stablenew worker`, as a user runs it; returns once it is draining the queue."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "stablenew", "--home", str(home), "worker", *args],
        cwd=ROOT,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "300"},
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line.startswith("worker running against"), line
    if drain:  # the worker logs a line per job and event: read them, or a full pipe blocks it
        threading.Thread(target=proc.stdout.read, name="worker-stdout", daemon=True).start()
    return Worker(proc, line.split()[3].rstrip(";"))
