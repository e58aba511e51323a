"""JobRunner (single node): one worker thread that claims jobs and runs them one at a time.

While a job runs, a heartbeat thread (one for the runner's life) renews its lease and picks up
cancel requests made from any process.
After a failure caused by the backend dying, the runner waits for a healthy backend before the
next claim; if the backend cannot come up, it pauses the queue with the reason instead of failing
every remaining job.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from stablenew.jobs.cancel import CancelToken
from stablenew.jobs.job import Job, JobOutcome, JobStatus, error_envelope
from stablenew.observe.events import EventBus, EventKind
from stablenew.observe.lifecycle import JobLifecycleLogger
from stablenew.queue.store import JobStore, new_owner

Checkpoint = Callable[[dict], None]
Execute = Callable[[Job, CancelToken, Checkpoint], JobOutcome]
BackendReady = Callable[[], str | None]  # None when ready, else why not

STOPPING = "runner stopping"


class JobRunner:
    def __init__(
        self,
        store: JobStore,
        execute: Execute,
        bus: EventBus,
        *,
        backend_ready: BackendReady | None = None,
        poll_interval: float = 0.5,
        max_attempts: int = 3,
        owner: str | None = None,
    ) -> None:
        self.store = store
        self.execute = execute
        self.bus = bus
        self.lifecycle = JobLifecycleLogger(bus)
        self.backend_ready = backend_ready
        self.poll_interval = poll_interval
        self.max_attempts = max_attempts
        self.owner = owner or new_owner()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._heartbeat_thread: threading.Thread | None = None
        self._heartbeat_stop = threading.Event()
        self._current_lock = threading.Lock()
        self._current: tuple[str, CancelToken] | None = None

    @property
    def current_job_id(self) -> str | None:
        with self._current_lock:
            return self._current[0] if self._current else None

    def recover(self) -> None:
        for job_id, status in self.store.recover(self.max_attempts):
            verb = "re-queued to resume" if status == JobStatus.QUEUED else "quarantined"
            self.bus.emit(
                EventKind.JOB_RECOVERED,
                f"Job left RUNNING by a dead runner: {verb}.",
                source="runner",
                job_id=job_id,
                fields={"status": status.value},
            )

    def start(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            return
        self.recover()
        self._stopping.clear()
        self._thread = threading.Thread(target=self._loop, name="job-runner")
        self._thread.start()

    def wake(self) -> None:
        self._wake.set()

    def cancel(self, job_id: str) -> bool:
        """Signal the running job's CancelToken; False if that job is not running here."""
        with self._current_lock:
            if self._current is None or self._current[0] != job_id:
                return False
            token = self._current[1]
        token.cancel("cancelled by the user")
        return True

    def stop(self, timeout: float = 15.0) -> bool:
        """Stop claiming, end the current job (it is re-queued to resume), join the thread."""
        self._stopping.set()
        with self._current_lock:
            if self._current is not None:
                self._current[1].cancel(STOPPING)
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
        stopped = self._thread is None or not self._thread.is_alive()
        if stopped and self._heartbeat_thread is not None:  # else a job still runs: keep its lease
            self._heartbeat_stop.set()
            self._heartbeat_thread.join(timeout)
            self._heartbeat_thread = None
        return stopped

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _loop(self) -> None:
        while not self._stopping.is_set():
            job = self.store.claim_next(self.owner)
            if job is None:
                self._wake.wait(self.poll_interval)
                self._wake.clear()
                continue
            self.run_job(job)

    def run_job(self, job: Job) -> JobOutcome:
        token = CancelToken()
        with self._current_lock:
            self._current = (job.id, token)
        self._start_heartbeat()
        self.lifecycle.log_job_started(job.id, job.attempts, job.spec.stages())
        try:
            outcome = self.execute(
                job, token, lambda cp: self.store.save_checkpoint(job.id, self.owner, cp)
            )
        except Exception as exc:  # the pipeline's own failures arrive as outcomes; this is a bug
            outcome = JobOutcome.failed(error_envelope(exc))
        finally:
            with self._current_lock:
                self._current = None
        if outcome.status == JobStatus.CANCELLED and token.reason == STOPPING:
            self.store.release(job.id, self.owner, "runner stopped; will resume")
            self.bus.emit(
                EventKind.JOB_RECOVERED,
                "Runner stopped mid-job: the job is queued again and resumes at the next start.",
                source="runner",
                job_id=job.id,
            )
            return outcome
        if self.store.finish(job.id, self.owner, outcome):
            self.lifecycle.log_job_finished(job.id, outcome.status, _summary(outcome))
        if outcome.backend_down:
            self._await_backend()
        return outcome

    def _start_heartbeat(self) -> None:
        if self._heartbeat_thread is None or not self._heartbeat_thread.is_alive():
            self._heartbeat_stop.clear()
            self._heartbeat_thread = threading.Thread(
                target=self._heartbeat, name="job-heartbeat", daemon=True
            )
            self._heartbeat_thread.start()

    def _heartbeat(self) -> None:
        """Renew the running job's lease; a job shorter than one interval costs nothing here."""
        interval = max(0.2, min(self.store.lease_seconds / 3, 1.0))
        while not self._heartbeat_stop.wait(interval):
            with self._current_lock:
                current = self._current
            if current is None:
                continue
            job_id, token = current
            try:
                if self.store.renew_lease(job_id, self.owner):
                    token.cancel("cancelled by the user")
            except Exception as exc:  # a busy database must not kill the job
                self.bus.emit(EventKind.WARNING, f"lease renewal failed: {exc}", job_id=job_id)

    def _await_backend(self) -> None:
        if self.backend_ready is None:
            return
        reason = self.backend_ready()
        if reason is not None:
            message = f"backend unavailable: {reason}"
            self.store.pause(message)
            self.bus.emit(EventKind.QUEUE_PAUSED, f"Queue paused: {message}", source="runner")


def _summary(outcome: JobOutcome) -> str:
    if outcome.status == JobStatus.COMPLETED:
        count = len(outcome.result.get("images", []))
        return f"Job completed: {count} image(s)."
    if outcome.status == JobStatus.CANCELLED:
        kept = len(outcome.result.get("images", []))
        return f"Job cancelled; {kept} finished image(s) kept."
    return f"Job failed: {(outcome.error or {}).get('message', 'unknown error')}"
