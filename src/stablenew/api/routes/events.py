"""/api/v1/events: the lifecycle trail as Server-Sent Events (see api/sse.py)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Query
from fastapi.responses import StreamingResponse

from stablenew.api.context import Ctx
from stablenew.errors import InputError

router = APIRouter(prefix="/api/v1", tags=["events"])


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
    the stream goes live. Progress events carry no `id:` and may be coalesced."""
    if last_event_id is not None and after is None:
        if not last_event_id.strip().isdigit():
            raise InputError("Last-Event-ID: expected a seq (a whole number)")
        after = int(last_event_id.strip())
    return StreamingResponse(
        ctx.hub.stream(after, job_id, progress),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )
