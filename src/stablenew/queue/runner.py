"""JobRunner (single node): one worker thread that claims jobs and runs them one at a time.

While a job runs, a heartbeat thread (one for the runner's life) renews its lease and picks up
cancel requests made from any process. Before each claim the runner makes sure the backend can
take a job (`BackendGate`); when it cannot — the crash-loop breaker is open, an attached backend
is gone — the queue pauses with the reason instead of failing job after job. The same happens
when two jobs in a row fail for the same environmental reason (an unwritable or full output
folder, rejected credentials, out of memory). A pause the runner made ends when the user resumes
the queue, or, for a crash loop, with one trial after the breaker's cooldown.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Protocol

from stablenew.errors import StableNewError
from stablenew.jobs.cancel import CancelToken
from stablenew.jobs.execution import Execute
from stablenew.jobs.job import Job
from stablenew.jobs.outcome import Checkpoint, ErrorEnvelope, ImageRecord, JobOutcome
from stablenew.jobs.status import REASON_TEXT, FailureReason, JobStatus
from stablenew.observe.events import EventBus, EventKind
from stablenew.queue.store import Claim, JobStore, new_owner

STOPPING = "runner stopping"
ENVIRONMENTAL = {
    FailureReason.OUTPUT_UNWRITABLE,
    FailureReason.OUTPUT_FULL,
    FailureReason.BACKEND_UNREACHABLE,
    FailureReason.AUTH_REJECTED,
    FailureReason.OUT_OF_MEMORY,
}


class BackendGate(Protocol):
    """What the runner asks of the backend between jobs."""

    def ensure_ready(self) -> str | None:
        """Start the backend if it is not running; None when it can take a job, else why not."""

    def trial_due(self) -> bool:
        """A crash loop's cooldown is over: one trial start is allowed now (half-open)."""

    def resumed_by_user(self) -> None:
        """The user resumed a queue the runner had paused: the cause is said to be fixed."""

    def job_completed(self) -> None:
        """A whole job went through: the backend's earlier crashes were not a loop."""

    def hold(self, reason: str) -> bool:
        """This backend cannot take jobs now (set it aside); True when no backend can, so the
        queue must pause."""

    def held(self) -> bool:
        """Set aside, until its trial after the cooldown or the user's resume."""


class _Saver:
    """A running job's checkpoints, kept in the store under the runner's lease."""

    def __init__(self, store: JobStore, job_id: str, owner: str) -> None:
        self.store, self.job_id, self.owner = store, job_id, owner

    def save(self, checkpoint: Checkpoint) -> None:
        self.store.save_checkpoint(self.job_id, self.owner, checkpoint)

    def save_image(self, record: ImageRecord) -> None:
        self.store.save_image(self.job_id, self.owner, record)

    def records(self) -> list[ImageRecord]:
        return self.store.image_records(self.job_id)


Pick = Callable[[], Job | None]  # which queued job this runner takes (it reads the store)


class JobRunner:
    def __init__(
        self,
        store: JobStore,
        execute: Execute,
        bus: EventBus,
        *,
        max_attempts: int,
        gate: BackendGate | None = None,
        poll_interval: float = 0.5,
        owner: str | None = None,
        pick: Pick | None = None,
        name: str = "default",
        recover_every: float = 5.0,
    ) -> None:
        self.store = store
        self.execute = execute
        self.bus = bus
        self.gate = gate
        self.poll_interval = poll_interval
        self.max_attempts = max_attempts
        self.name = name  # the backend this runner drives
        self.owner = owner or new_owner(name)
        self.pick = pick  # None: the head of the queue
        # Not only at start: a process that took over from a killed owner may have looked
        # while the dead one still held its lease (or was not reaped yet).
        self.recover_every = recover_every
        self._recovered_at = 0.0
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._heartbeat_thread: threading.Thread | None = None
        self._heartbeat_stop = threading.Event()
        self._current_lock = threading.Lock()
        self._current: tuple[str, CancelToken] | None = None
        self.last_job: str | None = None  # the job it ran most recently (or runs now)
        self._my_pause: str | None = None  # the reason of a pause this runner made
        self._last_reason: FailureReason | None = None  # the previous job's environmental reason

    def recover(self) -> None:
        self._recovered_at = time.monotonic()
        for event in self.store.recover(self.max_attempts):
            self.bus.publish(event)

    def start(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            return
        self.recover()
        self._stopping.clear()
        self._thread = threading.Thread(target=self._loop, name="job-runner")
        self._thread.start()

    def wake(self) -> None:
        self._wake.set()

    @property
    def current_job(self) -> str | None:
        """The job this runner runs now, if any."""
        with self._current_lock:
            return self._current[0] if self._current is not None else None

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

    # -- the loop ------------------------------------------------------------------------------

    def _loop(self) -> None:
        while not self._stopping.is_set():
            try:
                if time.monotonic() - self._recovered_at >= self.recover_every:
                    self.recover()
                claim = self._next()
            except StableNewError as exc:  # a busy or damaged store: say so, try again later
                self.bus.emit(EventKind.WARNING, f"runner: {exc}", source="runner")
                claim = None
            if claim is None:
                self._wake.wait(self.poll_interval)
                self._wake.clear()
                continue
            try:
                self.run_job(claim)
            except StableNewError as exc:  # a pause the store refused: the loop lives on
                self.bus.emit(EventKind.WARNING, f"runner: {exc}", source="runner")

    def _next(self) -> Claim | None:
        """The next job to run, once the backend can take it; None when there is none now."""
        paused = self.store.paused()
        if self._my_pause is not None and paused != self._my_pause:
            self._my_pause = None  # the user resumed (or paused again for a reason of theirs)
            self._last_reason = None
            if paused is None and self.gate is not None:
                self.gate.resumed_by_user()
        if paused is not None:
            if paused == self._my_pause and self.gate is not None and self.gate.trial_due():
                event = self.store.resume(source="runner")
                if event is not None:
                    self._my_pause = None
                    self.bus.publish(event)
            else:
                return None
        if self.gate is not None:
            if self.gate.held() and not self.gate.trial_due():
                return None  # set aside until its trial or the user's resume
            why = self.gate.ensure_ready()
            if why is not None:
                self._hold(f"backend unavailable: {why}")
                return None
        if self.pick is None:
            return self.store.claim_next(self.owner, self.name)
        while True:
            chosen = self.pick()
            if chosen is None:
                return None
            claim = self.store.claim(chosen.id, self.owner, self.name)
            if claim is not None or self.store.paused() is not None:
                return claim
            # Another backend's runner took it first: choose again now, not at the next poll.

    def run_job(self, claim: Claim) -> JobOutcome:
        job = claim.job
        token = CancelToken()
        with self._current_lock:
            self._current = (job.id, token)
            self.last_job = job.id
        self._start_heartbeat()
        self.bus.publish(claim.event)
        try:
            outcome = self.execute(job, token, _Saver(self.store, job.id, self.owner))
        except Exception as exc:  # the pipeline's own failures arrive as outcomes; this is a bug
            outcome = JobOutcome.failed(ErrorEnvelope.from_exception(exc, job_id=job.id))
        finally:
            with self._current_lock:
                self._current = None
        if outcome.status == JobStatus.CANCELLED and token.reason == STOPPING:
            self._settle(
                job, lambda: self._release(job, "the runner stopped; it resumes at the next start")
            )
            return outcome
        if outcome.released:
            error = outcome.error
            why = "it cannot run jobs now"
            if error is not None:
                why = error.causes[-1].message if error.causes else error.message
            self._settle(job, lambda: self._release(job, f"backend {self.name} is in a crash loop"))
            self._hold(f"backend unavailable: {why}")
            return outcome
        self._settle(job, lambda: self._finish(job, outcome))
        if outcome.status == JobStatus.COMPLETED and self.gate is not None:
            self.gate.job_completed()
        self._after(outcome)
        return outcome

    def _finish(self, job: Job, outcome: JobOutcome) -> None:
        event = self.store.finish(job.id, self.owner, outcome)
        if event is not None:
            self.bus.publish(event)

    def _settle(self, job: Job, record: Callable[[], None]) -> None:
        """Record a job's end however long the store refuses (a full or read-only disk): the
        end must not be lost, and this thread must live to run the next job. Stopping while
        it still refuses leaves the job RUNNING; the next start's recovery re-queues it."""
        delay, said = self.poll_interval, False
        while True:
            try:
                record()
                return
            except StableNewError as exc:
                if not said:
                    said = True
                    self.bus.emit(
                        EventKind.WARNING,
                        f"job {job.short_id}: cannot record its end: {exc}; trying again until "
                        "it can",
                        job_id=job.id,
                        source="runner",
                    )
            if self._stopping.wait(delay):
                return
            delay = min(delay * 2, 5.0)

    def _release(self, job: Job, detail: str) -> None:
        event = self.store.release(job.id, self.owner, detail)
        if event is not None:
            self.bus.publish(event)

    def _after(self, outcome: JobOutcome) -> None:
        """Two jobs in a row failing for one environmental reason: the third would too."""
        reason = outcome.error.reason if outcome.error is not None else None
        if outcome.status != JobStatus.FAILED or reason not in ENVIRONMENTAL:
            self._last_reason = None
            return
        if reason == self._last_reason:
            self._last_reason = None
            self._pause(f"2 jobs in a row failed because {REASON_TEXT[reason]}")
        else:
            self._last_reason = reason

    def _hold(self, reason: str) -> None:
        """This backend cannot take jobs: the queue pauses when no backend of the pool can."""
        if self.gate is None or self.gate.hold(reason):
            self._pause(reason)
        else:
            self.bus.emit(
                EventKind.WARNING,
                f"backend {self.name} set aside: {reason}; the other backends go on",
                source="runner",
            )

    def _pause(self, reason: str) -> None:
        if self.store.paused() == reason:
            return
        self._my_pause = reason
        self.bus.publish(self.store.pause(reason, source="runner"))

    # -- the heartbeat -------------------------------------------------------------------------

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
