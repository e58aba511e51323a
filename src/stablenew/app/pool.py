"""The backends one owner drives: each with its process manager, recovery layer, breaker and
JobRunner, all claiming from the one durable queue, placed by `app.placement`.

A pool of one is what a `[backend]` section makes, and behaves as a single backend always has
(its runner takes the first job it can run; its crash loop pauses the queue), pins and names
checked as in any pool. In a pool
of several, a backend whose breaker opens is set aside: its job goes back to the queue and
resumes on another backend from its checkpoint, it gets one trial after the cooldown, and the
queue pauses only when no backend of the pool can take jobs.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from stablenew.app.controllers import BackendController, BackendRuntime
from stablenew.app.placement import BackendView, Placement, PoolPolicy, pinned_to
from stablenew.jobs.cancel import CancelToken
from stablenew.jobs.execution import CheckpointSaver
from stablenew.jobs.job import Job
from stablenew.jobs.outcome import JobOutcome
from stablenew.jobs.status import BackendState
from stablenew.observe.events import EventBus
from stablenew.pipeline.runner import PipelineRunner, PreviewSink
from stablenew.pipeline.settings import PipelineSettings
from stablenew.queue.runner import JobRunner
from stablenew.queue.store import JobStore
from stablenew.webui.client import WebUIClient
from stablenew.webui.process import LaunchConfig, WebUIProcessManager
from stablenew.webui.recovery import RecoveringBackend, RecoveryPolicy

FIRST_PAGE = 16  # a pool of one reads this many queued jobs to find the one to run
LISTS_MAX_AGE = 5.0  # seconds: how often a backend re-reads its lists while a job waits for them


@dataclass
class BackendConfig:
    """One backend of the pool, as the configuration describes it."""

    name: str
    launch: LaunchConfig
    labels: frozenset[str] = frozenset()
    auth: tuple[str, str] | None = None


@dataclass(eq=False)
class Member:
    """One backend and everything that drives it in the owner."""

    config: BackendConfig
    manager: WebUIProcessManager
    controller: BackendController = field(init=False)
    client: WebUIClient | None = None
    recovering: RecoveringBackend | None = None
    pipeline: PipelineRunner | None = None
    runner: JobRunner | None = None
    held: str | None = None  # set aside (its breaker is open): why

    @property
    def name(self) -> str:
        return self.config.name

    def runtime(self) -> BackendRuntime:
        def loaded() -> str | None:
            return self.recovering.loaded_model if self.recovering is not None else None

        def current() -> str | None:
            return self.runner.current_job if self.runner is not None else None

        def release() -> None:
            self.held = None
            if self.runner is not None:
                self.runner.wake()

        return BackendRuntime(
            loaded_model=loaded, current_job=current, held=lambda: self.held, release=release
        )

    def view(self) -> BackendView:
        backend = self.recovering
        return BackendView(
            name=self.name,
            labels=self.config.labels,
            lists=backend.known_lists() if backend is not None else None,
            loaded=backend.loaded_model if backend is not None else None,
            healthy=self.held is None and self.manager.state == BackendState.READY,
            held=self.held,
        )


class MemberGate:
    """What one member's JobRunner asks between jobs (`queue.runner.BackendGate`)."""

    def __init__(self, pool: BackendPool, member: Member) -> None:
        self.pool = pool
        self.member = member

    def ensure_ready(self) -> str | None:
        return self.member.controller.ensure_ready()

    def trial_due(self) -> bool:
        if self.member.controller.trial_due():
            self.member.held = None
            return True
        return False

    def resumed_by_user(self) -> None:
        self.pool.reset(why="the user resumed the queue")

    def job_completed(self) -> None:
        self.member.controller.job_completed()

    def hold(self, reason: str) -> bool:
        """Set this backend aside; True when no backend of the pool can take jobs now."""
        self.member.held = reason
        return all(m.held is not None for m in self.pool.members)

    def held(self) -> bool:
        return self.member.held is not None


class BackendPool:
    def __init__(self, members: list[Member], policy: PoolPolicy) -> None:
        if not members:
            raise ValueError("a pool needs at least one backend")
        self.members = members
        self.policy = policy
        self.placement = Placement(policy)

    @property
    def single(self) -> bool:
        return len(self.members) == 1

    def run(
        self,
        store: JobStore,
        bus: EventBus,
        settings: PipelineSettings,
        recovery: RecoveryPolicy,
        previews: PreviewSink,
    ) -> list[JobRunner]:
        """A pipeline and a JobRunner for every backend; returns the runners (not started)."""
        runners = []
        for member in self.members:
            client = member.controller.client()
            member.recovering = RecoveringBackend(client, member.manager, recovery)
            if member.manager.state == BackendState.READY:  # its READY was told before this
                member.recovering.read_loaded_model()
            member.pipeline = PipelineRunner(
                member.recovering,
                bus,
                settings,
                previews=previews,
                backend_name=member.name,
                pooled=not self.single,
            )
            member.runner = JobRunner(
                store,
                self._execute(member),
                bus,
                gate=MemberGate(self, member),
                max_attempts=recovery.max_attempts,
                pick=self._pick(member, store),
                name=member.name,
            )
            runners.append(member.runner)
            member.controller.runtime = member.runtime()
        return runners

    def _execute(self, member: Member) -> Callable[[Job, CancelToken, CheckpointSaver], JobOutcome]:
        def execute(job: Job, token: CancelToken, saver: CheckpointSaver) -> JobOutcome:
            assert member.pipeline is not None
            self.placement.forget(job.id)
            return member.pipeline(job, token, saver)

        return execute

    def _pick(self, member: Member, store: JobStore) -> Callable[[], Job | None]:
        pins = (member.name, *member.config.labels)

        def pick() -> Job | None:
            if member.recovering is not None:
                member.recovering.lists()  # asked once per backend process
            views = [m.view() for m in self.members]
            me = next(v for v in views if v.name == member.name)
            eligible, seen = self._candidates(store, me, pins)
            if self.single:  # no other backend to prefer: the first job it may run
                chosen = eligible[0] if eligible else None
            else:
                chosen = self.placement.pick(me, eligible, views)
            lacking = chosen is None and any(self.placement.lacks(job, me) for job in seen)
            if lacking and member.recovering is not None and me.healthy:
                # A job waits for something this backend had not: ask its lists again (at
                # most every LISTS_MAX_AGE s); the next look uses the new ones.
                member.recovering.lists(max_age=LISTS_MAX_AGE)
            if self.placement.notes_due(chose=chosen is not None):
                self._note(store, views, seen)
            return chosen

        return pick

    def _candidates(
        self, store: JobStore, me: BackendView, pins: tuple[str, ...]
    ) -> tuple[list[Job], list[Job]]:
        """The first `[pool] window` queued jobs `me` can run (jobs pinned to other backends
        skipped by the query, jobs it lacks names for skipped here, however many there are),
        and every job looked at. A pool of one needs only the first such job, and takes a job
        it lacks a name for too: no other backend could ever run it, so it fails before its
        first call, saying which name, instead of waiting for good."""
        wanted = 1 if self.single else self.policy.window
        size = FIRST_PAGE if self.single else self.policy.window
        fits = pinned_to if self.single else self.placement.can_run
        eligible: list[Job] = []
        seen: list[Job] = []
        after: Job | None = None
        while len(eligible) < wanted:
            page = store.pending_after(after, size, pins)
            seen += page
            eligible += [job for job in page if fits(job, me)]
            if len(page) < size:
                break
            after, size = page[-1], self.policy.window
        return eligible[:wanted], seen

    def _note(self, store: JobStore, views: list[BackendView], seen: list[Job]) -> None:
        """Why queued jobs wait: those this backend looked at, and those pinned to no healthy
        backend (found through the pin index, wherever they are in the queue)."""
        healthy = {p for v in views if v.healthy for p in (v.name, *v.labels)}
        notes = self.placement.waiting(seen, views)
        away = store.pinned_away(healthy)
        for job_id, pin in away:
            notes[job_id] = self.placement.pin_note(pin, views)
        had = store.notes()
        # A pin's note goes when its backend is back; other notes only when looked at again
        # (another backend's look may not reach them).
        pin_note = self.placement.pin_note
        back = {i for i, (note, pin) in had.items() if pin and note == pin_note(pin, views)}
        among = {j.id for j in seen} | {job_id for job_id, _ in away} | back
        changed = [i for i in among if notes.get(i, "") != had.get(i, ("", None))[0]]
        if changed:
            store.set_notes(notes, changed)

    def reset(self, why: str) -> None:
        """The user says the cause is fixed: every backend may be started again."""
        for member in self.members:
            member.held = None
            member.manager.reset_breaker(why)

    def stop(self, grace: float) -> None:
        for member in self.members:
            if member.recovering is not None:
                member.recovering.close()
        threads = [
            threading.Thread(target=m.manager.stop, args=(grace,), name=f"stop-{m.name}")
            for m in self.members
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(grace + 15)
