"""What every route reaches through the request: the controllers and the API's own parts."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, HTTPException, Request

from stablenew.api.security import Security
from stablenew.api.sse import EventHub
from stablenew.app.metrics import Metrics
from stablenew.app.services import Services
from stablenew.errors import QueueError
from stablenew.jobs.job import Job


@dataclass
class ApiContext:
    services: Services
    security: Security
    hub: EventHub
    metrics: Metrics


def _context(request: Request) -> ApiContext:
    context: ApiContext = request.app.state.context
    return context


Ctx = Annotated[ApiContext, Depends(_context)]


def find_job(ctx: ApiContext, job_id: str) -> Job:
    """The job with this id (or unique prefix); 404 when there is none, so a QueueError from
    what the route does next means "wrong status" (409)."""
    try:
        return ctx.services.jobs.get_job(ctx.services.jobs.find(job_id))
    except QueueError as exc:
        raise HTTPException(404, str(exc)) from exc
