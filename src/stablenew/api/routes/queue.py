"""/api/v1/queue: pause (with a reason), resume, and what the queue is doing."""

from __future__ import annotations

from fastapi import APIRouter

from stablenew.api.context import ApiContext, Ctx
from stablenew.api.models import Empty, PauseBody, QueueState
from stablenew.api.strict_json import StrictJSONRoute
from stablenew.app.views import JobView
from stablenew.jobs.status import JobStatus

router = APIRouter(prefix="/api/v1/queue", tags=["queue"], route_class=StrictJSONRoute)


def queue_state(ctx: ApiContext) -> QueueState:
    jobs = ctx.services.jobs
    running = jobs.page([JobStatus.RUNNING], limit=1).jobs
    reason = jobs.paused()
    return QueueState(
        paused=reason is not None,
        reason=reason,
        running=JobView.of(running[0]) if running else None,
        depth=jobs.count([JobStatus.QUEUED]),
        finished={
            s.value: jobs.count([s])
            for s in (JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED)
        },
    )


@router.get("", response_model=QueueState)
def state(ctx: Ctx) -> QueueState:
    """The running job, how many wait, whether the queue is paused and why."""
    return queue_state(ctx)


@router.post("/pause", response_model=QueueState)
def pause(ctx: Ctx, body: PauseBody | None = None) -> QueueState:
    """The running job finishes; nothing new starts until resumed (survives restarts)."""
    ctx.services.jobs.pause((body or PauseBody()).reason, source="api")
    return queue_state(ctx)


@router.post("/resume", response_model=QueueState)
def resume(ctx: Ctx, body: Empty | None = None) -> QueueState:
    """Resume a paused queue (also after the crash-loop breaker paused it)."""
    ctx.services.jobs.resume(source="api")
    return queue_state(ctx)
