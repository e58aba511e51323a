"""/api/v1/events: the lifecycle trail as Server-Sent Events (see api/sse.py)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Query
from fastapi.responses import StreamingResponse

from stablenew.api.context import Ctx
from stablenew.api.models import RecentEvents
from stablenew.api.sse import event_data
from stablenew.api.strict_json import StrictJSONRoute
from stablenew.errors import InputError

router = APIRouter(prefix="/api/v1", tags=["events"], route_class=StrictJSONRoute)


@router.get(
    "/events",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}}},
)
async def events(
    ctx: Ctx,
    after: Annotated[
        int | None, Query(ge=0, description="Replay every event after this seq")
    ] = None,
    job_id: Annotated[str | None, Query(description="Only this job's events")] = None,
    progress: Annotated[bool, Query(description="Live step progress (no id:)")] = True,
    last_event_id: Annotated[str | None, Header()] = None,
) -> StreamingResponse:
    """`id:` is the store's seq, `event:` the kind, `data:` the event as JSON (`job_id`,
    `status`, `stage`, `image_index`, `fields`, ...). Without `Last-Event-ID` (or `?after=`)
    the stream starts live; with it, every event after that seq comes first, in order, then
    the stream goes live (given both, the later seq counts); a seq past the log's end (the
    database was replaced) replays the log from its start. Progress events carry no `id:`
    and may be coalesced."""
    if last_event_id is not None:
        if not last_event_id.strip().isdigit():
            raise InputError("Last-Event-ID: expected a seq (a whole number)")
        # A browser's EventSource reconnects to the same URL with the last id it saw: that
        # is further than the `?after=` it first opened with, never behind it.
        after = max(int(last_event_id.strip()), after or 0)
    if after is not None and after > ctx.services.jobs.last_seq():
        # Seqs only grow: an id past the end comes from a database since deleted or set
        # aside, so every event of this one is new to the client.
        after = 0
    return StreamingResponse(
        ctx.hub.stream(after, job_id, progress),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


@router.get("/events/recent", response_model=RecentEvents)
def recent(
    ctx: Ctx,
    limit: Annotated[int, Query(ge=1, le=5000)] = 200,
) -> RecentEvents:
    """The last events of the lifecycle log (oldest first) and `last_seq`: open the stream
    with `Last-Event-ID: last_seq` and nothing falls between the two."""
    jobs = ctx.services.jobs
    last = jobs.last_seq()
    events = jobs.events_since(max(0, last - limit), None, limit)
    seen = max([last, *(e.store_seq or 0 for e in events)])
    return RecentEvents(events=[event_data(e) for e in events], last_seq=seen)
