"""Placement: which queued job a backend of the pool takes next.

- Capability: a job goes only to a backend that has what it needs (its model, VAE, sampler,
  upscalers, LoRAs and embeddings, from that backend's lists) and that its pin (`spec.backend`,
  a backend name or label) allows. A job no backend can run waits, with the reason shown.
- Model affinity: switching checkpoints is the costliest thing a backend does between images, so
  a backend prefers the next job that uses the model it has loaded, and leaves a job to another
  backend that has that job's model loaded.
- Fairness: affinity reorders only among jobs of the head's priority, and a job is passed over at
  most `max_skips` times or for `max_wait` seconds; then the next backend that can run it takes
  it whatever it has loaded. Priorities, pauses and manual order hold as with one backend.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field

from stablenew.jobs.job import Job
from stablenew.pipeline.names import unknown_names
from stablenew.webui.lists import BackendLists

NOTES_EVERY = 1.0  # seconds between updates of why queued jobs wait, while jobs flow


class PoolPolicy(BaseModel):
    """The `[pool]` section of config.toml."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    affinity: bool = True  # prefer jobs for the loaded model
    max_skips: int = Field(20, ge=0)  # a job is passed over at most this many times ...
    max_wait: float = Field(600.0, ge=0)  # ... or for this many seconds
    window: int = Field(200, ge=1)  # how far down the queue a backend looks


@dataclass(frozen=True)
class BackendView:
    """What placement knows of one backend of the pool at this moment."""

    name: str
    labels: frozenset[str]
    lists: BackendLists | None  # None: not asked yet (it can take anything then)
    loaded: str | None  # the loaded checkpoint's title
    healthy: bool  # running and not set aside by its breaker
    held: str | None = None  # set aside by its breaker: why


def pinned_to(job: Job, backend: BackendView) -> bool:
    pin = job.spec.backend
    return pin is None or pin == backend.name or pin in backend.labels


def why_not(job: Job, backend: BackendView) -> str | None:
    """None when `backend` can run `job`; else why not, in one line."""
    if not pinned_to(job, backend):
        return f"pinned to {job.spec.backend}"
    if backend.lists is not None:
        problems = unknown_names(job.spec, backend.lists)
        if problems:
            return problems[0]
    return None


class _Verdicts:
    """`why_not`, remembered: every backend asks it of the whole window before each job, and
    the answer changes only when the job's spec (an edit) or the backend's lists (a restart)
    do. The store hands out one spec object per spec text, so identity says "unchanged"."""

    LIMIT = 20_000

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._seen: dict[tuple[str, str], tuple[object, object, str | None]] = {}

    def __call__(self, job: Job, backend: BackendView) -> str | None:
        key = (job.id, backend.name)
        with self._lock:
            seen = self._seen.get(key)
        if seen is not None and seen[0] is job.spec and seen[1] is backend.lists:
            return seen[2]
        verdict = why_not(job, backend)
        with self._lock:
            if len(self._seen) >= self.LIMIT:  # finished jobs' verdicts: start afresh
                self._seen.clear()
            self._seen[key] = (job.spec, backend.lists, verdict)
        return verdict


def model_of(job: Job, backend: BackendView) -> str | None:
    if job.spec.model is None:
        return None
    return backend.lists.title(job.spec.model) if backend.lists is not None else job.spec.model


class Placement:
    def __init__(self, policy: PoolPolicy, clock: Callable[[], float] = time.monotonic) -> None:
        self.policy = policy
        self._clock = clock
        self._lock = threading.Lock()
        self._skipped: dict[str, tuple[int, float]] = {}  # job id -> (times, since)
        self._why_not = _Verdicts()
        self._noted = float("-inf")  # when the waiting notes were last worked out

    def pick(
        self, me: BackendView, window: Sequence[Job], others: Sequence[BackendView]
    ) -> Job | None:
        """The job `me` should claim now, or None (nothing it may or should run)."""
        eligible = [job for job in window if self._why_not(job, me) is None]
        if not eligible:
            return None
        head = eligible[0]
        if not self.policy.affinity or self._overdue(head):
            return self._took(head, eligible)
        group = [job for job in eligible if job.priority == head.priority]
        mine = next((j for j in group if self._suits(j, me)), None)
        if mine is not None:
            return self._took(mine, group)
        # Nothing for my model: leave jobs to backends that have theirs loaded; take the first
        # job none of them is better placed for (switching costs every backend the same).
        better = [o for o in others if o.healthy and o.name != me.name]
        for job in group:
            if self._overdue(job) or not any(
                o.loaded is not None
                and o.loaded == model_of(job, o)
                and self._why_not(job, o) is None
                for o in better
            ):
                return self._took(job, group)
        return None

    def can_run(self, job: Job, backend: BackendView) -> bool:
        return self._why_not(job, backend) is None

    def lacks(self, job: Job, backend: BackendView) -> bool:
        """The pin allows `backend`, but its lists lack a name `job` needs."""
        return pinned_to(job, backend) and self._why_not(job, backend) is not None

    def waiting(self, jobs: Sequence[Job], backends: Sequence[BackendView]) -> dict[str, str]:
        """Why each of `jobs` that no healthy backend can run is waiting."""
        healthy = [b for b in backends if b.healthy]
        notes: dict[str, str] = {}
        for job in jobs:
            reasons = [self._why_not(job, b) for b in healthy]
            if job.spec.backend is not None and not _known(job.spec.backend, backends):
                notes[job.id] = unknown_pin(job.spec.backend)
            elif healthy and all(reasons):
                # A backend that could run it but is away is the reason, not the healthy
                # backends' missing names.
                away = [b for b in backends if not b.healthy and self._why_not(job, b) is None]
                notes[job.id] = (
                    away_note(away[0]) if away else _summarize(job, [r for r in reasons if r])
                )
            elif not healthy:
                notes[job.id] = "no backend is available"
        return notes

    @staticmethod
    def pin_note(pin: str, backends: Sequence[BackendView]) -> str:
        """Why a job pinned to `pin` waits when no healthy backend carries that name or label."""
        return pinned_note(pin) if _known(pin, backends) else unknown_pin(pin)

    def notes_due(self, chose: bool) -> bool:
        """Whether to work the waiting notes out now: at once when a backend found nothing to
        run, else at most once a second (they are for people; each costs a pass over the
        window for every backend)."""
        now = self._clock()
        with self._lock:
            if chose and now - self._noted < NOTES_EVERY:
                return False
            self._noted = now
        return True

    def forget(self, job_id: str) -> None:
        with self._lock:
            self._skipped.pop(job_id, None)

    def _suits(self, job: Job, me: BackendView) -> bool:
        wanted = model_of(job, me)
        return wanted is None or (me.loaded is not None and wanted == me.loaded)

    def _overdue(self, job: Job) -> bool:
        with self._lock:
            times, since = self._skipped.get(job.id, (0, self._clock()))
        return times >= self.policy.max_skips or self._clock() - since >= self.policy.max_wait

    def _took(self, taken: Job, before: Sequence[Job]) -> Job:
        """Count a pass-over for every job ahead of the one taken."""
        now = self._clock()
        with self._lock:
            self._skipped.pop(taken.id, None)
            for job in before:
                if job.id == taken.id:
                    break
                times, since = self._skipped.get(job.id, (0, now))
                self._skipped[job.id] = (times + 1, since)
        return taken


def pinned_note(pin: str) -> str:
    return f"waiting for backend {pin} (pinned)"


def away_note(backend: BackendView) -> str:
    why = f"set aside ({backend.held})" if backend.held else "it is not ready"
    return f"waiting for backend {backend.name}, the one that can run it: {why}"


def unknown_pin(pin: str) -> str:
    return f"no backend named {pin} in the config"


def _known(pin: str, backends: Sequence[BackendView]) -> bool:
    return any(pin == b.name or pin in b.labels for b in backends)


def _summarize(job: Job, reasons: list[str]) -> str:
    if job.spec.backend is not None and all(r.startswith("pinned") for r in reasons):
        return pinned_note(job.spec.backend)
    first = next((r for r in reasons if not r.startswith("pinned")), reasons[0])
    return f"no backend can run it: {first}"
