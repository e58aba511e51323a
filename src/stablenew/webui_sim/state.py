"""Process-wide state of the reference backend: the FIFO queue lock, progress, statistics and the
log of generation requests received.

Mirrors A1111's `shared.state` and `call_queue.queue_lock`: generation is serialized in arrival
order while progress, interrupt and skip answer from other threads without the lock.
"""

from __future__ import annotations

import threading
import time
from collections import Counter, deque
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


class FifoLock:
    """A lock granted strictly in arrival order (threading.Lock makes no such promise)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._waiting: deque[object] = deque()
        self._held = False

    def acquire(self) -> None:
        ticket = object()
        with self._cond:
            self._waiting.append(ticket)
            self._cond.wait_for(lambda: not self._held and self._waiting[0] is ticket)
            self._waiting.popleft()
            self._held = True

    def release(self) -> None:
        with self._cond:
            self._held = False
            self._cond.notify_all()

    def __enter__(self) -> FifoLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


class ProgressState:
    """What `/sdapi/v1/progress` reports; written by the running job, read by anyone."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.interrupt_event = threading.Event()
        self.skip_event = threading.Event()
        self.job = ""
        self.job_count = 0
        self.job_no = 0
        self.job_timestamp = "0"
        self.sampling_step = 0
        self.sampling_steps = 0
        self.interrupted = False
        self.skipped = False
        self.started = 0.0
        # Live preview, kept as A1111's State keeps it: what the sampler works on, the last
        # rendered image, and the sampling step it was rendered at.
        self.preview_source: Any = None
        self.current_image: Any = None
        self.current_image_step = 0

    def begin(self, job: str, job_count: int, sampling_steps: int) -> None:
        with self._lock:
            # A1111's State.begin clears the flags: an interrupt sent while idle is lost.
            self.interrupt_event.clear()
            self.skip_event.clear()
            self.interrupted = self.skipped = False
            self.job, self.job_count, self.job_no = job, job_count, 0
            self.sampling_step, self.sampling_steps = 0, sampling_steps
            self.job_timestamp = time.strftime("%Y%m%d%H%M%S")
            self.started = time.monotonic()
            self.preview_source = self.current_image = None
            self.current_image_step = 0

    def step(self, job_no: int, sampling_step: int, sampling_steps: int | None = None) -> None:
        with self._lock:
            if job_no != self.job_no:
                self.current_image_step = 0  # A1111's nextjob: the next batch counts afresh
            self.job_no, self.sampling_step = job_no, sampling_step
            if sampling_steps is not None:
                self.sampling_steps = sampling_steps

    def set_preview_source(self, source: Any) -> None:
        with self._lock:
            self.preview_source = source

    def end(self) -> None:
        with self._lock:
            # sampling_steps keeps the last job's value, as A1111 does.
            self.job, self.job_count, self.job_no, self.sampling_step = "", 0, 0, 0
            self.preview_source = self.current_image = None

    def interrupt(self) -> None:
        with self._lock:
            self.interrupted = True
            self.interrupt_event.set()

    def skip(self) -> None:
        with self._lock:
            self.skipped = True
            self.skip_event.set()

    def snapshot(self, preview_every: int = 0) -> dict[str, Any]:
        """What `/progress` reports; `current_image` is the live preview (a PIL image) or None.

        As A1111's `set_current_image` does, a new preview is rendered only once `preview_every`
        steps (`show_progress_every_n_steps`) have passed since the last one; until then the
        last one is shown again, and before the first, none. `preview_every` 0 renders nothing.
        """
        with self._lock:
            snap = self._snapshot_locked()
            source, fraction = None, 0.0
            due = self.sampling_step - self.current_image_step >= preview_every > 0
            if self.job_count and self.preview_source is not None and due:
                source, self.current_image_step = self.preview_source, self.sampling_step
                fraction = self.sampling_step / self.sampling_steps if self.sampling_steps else 0
        if source is not None:
            image = source.at(fraction)  # rendered outside the lock: sampling goes on meanwhile
            with self._lock:
                if self.preview_source is source:
                    self.current_image = image
        with self._lock:
            snap["current_image"] = self.current_image if snap["state"]["job_count"] else None
        return snap

    def _snapshot_locked(self) -> dict[str, Any]:
        progress = eta = 0.0
        if self.job_count > 0:
            frac = self.sampling_step / self.sampling_steps if self.sampling_steps else 0.0
            progress = min(1.0, 0.01 + self.job_no / self.job_count + frac / self.job_count)
            elapsed = time.monotonic() - self.started
            eta = elapsed / progress - elapsed
        return {
            "progress": progress,
            "eta_relative": eta,
            "state": {
                "skipped": self.skipped,
                "interrupted": self.interrupted,
                "stopping_generation": False,
                "job": self.job,
                "job_count": self.job_count,
                "job_timestamp": self.job_timestamp,
                "job_no": self.job_no,
                "sampling_step": self.sampling_step,
                "sampling_steps": self.sampling_steps,
            },
        }


class Stats:
    """What `/sim/stats` reports: what the server saw, for tests and benchmarks."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.endpoints: Counter[str] = Counter()
        self.stages: Counter[str] = Counter()
        self.completed: Counter[str] = Counter()
        self.in_flight = 0
        self.max_in_flight = 0
        self.processing = 0
        self.max_processing = 0
        self.interrupts = 0
        self.skips = 0
        self.model_loads = 0  # checkpoint switches (the one at start-up included)

    def count_endpoint(self, path: str) -> None:
        with self._lock:
            self.endpoints[path] += 1

    @contextmanager
    def request(self, stage: str) -> Iterator[None]:
        """A generation request from arrival to response, waiting for the lock included."""
        with self._lock:
            self.stages[stage] += 1
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            yield
        finally:
            with self._lock:
                self.in_flight -= 1

    @contextmanager
    def processing_section(self) -> Iterator[None]:
        with self._lock:
            self.processing += 1
            self.max_processing = max(self.max_processing, self.processing)
        try:
            yield
        finally:
            with self._lock:
                self.processing -= 1

    def count_completed(self, stage: str) -> None:
        with self._lock:
            self.completed[stage] += 1

    def count_model_load(self) -> None:
        with self._lock:
            self.model_loads += 1

    def count_interrupt(self) -> None:
        with self._lock:
            self.interrupts += 1

    def count_skip(self) -> None:
        with self._lock:
            self.skips += 1

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "endpoints": dict(self.endpoints),
                "stages": dict(self.stages),
                "completed": dict(self.completed),
                "in_flight": self.in_flight,
                "max_concurrent_requests": self.max_in_flight,
                "max_concurrent_processing": self.max_processing,
                "interrupts": self.interrupts,
                "skips": self.skips,
                "model_loads": self.model_loads,
            }


class RequestLog:
    """The last generation requests, bodies exactly as received (`GET /sim/requests`).

    Kept as the raw text, not re-serialized, so a test can prove that what a client built (an
    extension's args, key order, number formatting) is what reached the backend, byte for byte.
    """

    def __init__(self, size: int = 50) -> None:
        self._lock = threading.Lock()
        self._entries: deque[dict[str, str]] = deque(maxlen=size)

    def record(self, endpoint: str, body: bytes) -> None:
        text = body.decode("utf-8", errors="replace")
        with self._lock:
            self._entries.append({"endpoint": endpoint, "body": text})

    def entries(self) -> list[dict[str, str]]:
        with self._lock:
            return list(self._entries)

    def clear(self) -> int:
        with self._lock:
            cleared = len(self._entries)
            self._entries.clear()
            return cleared
