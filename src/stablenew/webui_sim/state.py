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
        self.preview: Any = None

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
            self.preview = None

    def step(self, job_no: int, sampling_step: int, sampling_steps: int | None = None) -> None:
        with self._lock:
            self.job_no, self.sampling_step = job_no, sampling_step
            if sampling_steps is not None:
                self.sampling_steps = sampling_steps

    def end(self) -> None:
        with self._lock:
            # sampling_steps keeps the last job's value, as A1111 does.
            self.job, self.job_count, self.job_no, self.sampling_step = "", 0, 0, 0
            self.preview = None

    def interrupt(self) -> None:
        with self._lock:
            self.interrupted = True
            self.interrupt_event.set()

    def skip(self) -> None:
        with self._lock:
            self.skipped = True
            self.skip_event.set()

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
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
                "preview": self.preview if self.job_count else None,
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
