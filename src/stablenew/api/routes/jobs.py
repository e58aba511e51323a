"""/api/v1/jobs: submit, list, look at, cancel, retry, edit, move and remove jobs.

Handlers are plain `def`: they call the controllers, which talk to SQLite (and, to check names
at submit, the backend), so FastAPI runs them on its thread pool, off the event loop.
"""

from __future__ import annotations

import base64
import binascii
import os
import tempfile
from pathlib import Path
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, HTTPException, Query, Response
from fastapi.responses import JSONResponse

from stablenew.api.context import ApiContext, Ctx, find_job
from stablenew.api.models import (
    OVERRIDE_NAMES,
    Checked,
    Count,
    EditBody,
    Empty,
    JobsPage,
    MoveBody,
    PackUpload,
    RemoveBody,
    RetryBody,
    SubmitBody,
    Submitted,
)
from stablenew.api.sse import event_data
from stablenew.api.strict_json import StrictJSONRoute
from stablenew.app.intents import Overrides, parse_size, parse_stages
from stablenew.app.views import JobView
from stablenew.errors import InputError, PackError
from stablenew.jobs.job import Job
from stablenew.jobs.spec import JobSpec
from stablenew.jobs.status import JobStatus

router = APIRouter(prefix="/api/v1/jobs", tags=["jobs"], route_class=StrictJSONRoute)
FINISHED = [JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED]


def job_response(job: Job, status: int = 200) -> JSONResponse:
    return JSONResponse(JobView.of(job).model_dump(mode="json"), status_code=status)


# -- submitting --------------------------------------------------------------------------------


@router.post("", status_code=201, response_model=Submitted)
def submit(body: SubmitBody, ctx: Ctx) -> Submitted:
    """Queue jobs: a JobSpec, several, a prompt with the CLI's overrides, or an uploaded pack.
    All of them are checked first; on any error nothing is queued (422)."""
    specs, warnings = _specs(ctx, body)
    ids = ctx.services.jobs.submit_many(specs, body.priority, source="api")
    return Submitted(ids=ids, warnings=warnings)


@router.post("/check", response_model=Checked)
def check(body: SubmitBody, ctx: Ctx) -> Checked:
    """What submitting this body would do, without queueing anything: the same checks (the
    backend's names included) and the same 422 messages, or how many jobs and images it
    makes. The web UI asks this as the user types."""
    specs, warnings = _specs(ctx, body)
    ctx.services.jobs.check(specs)
    return Checked(jobs=len(specs), images=sum(s.images for s in specs), warnings=warnings)


def _specs(ctx: ApiContext, body: SubmitBody) -> tuple[list[JobSpec], list[str]]:
    """The jobs a submit body describes, checked (an InputError names what is wrong)."""
    given = [k for k in ("spec", "specs", "prompt", "pack") if getattr(body, k) is not None]
    if len(given) != 1:
        raise InputError("give exactly one of spec, specs, prompt or pack")
    overrides = _overrides(body)
    warnings: list[str] = []
    if body.spec is not None or body.specs is not None:
        if overrides.given():
            raise InputError(
                f"{', '.join(overrides.given())}: overrides go with a prompt or a pack;"
                " put them in the spec"
            )
        specs = [body.spec] if body.spec is not None else list(body.specs or [])
        if not specs:
            raise InputError("specs: the list is empty")
    elif body.prompt is not None:
        specs = [ctx.services.intents.prompt(body.prompt, overrides, source="api")]
    else:
        assert body.pack is not None
        specs, warnings = _expand_pack(ctx, body.pack, overrides)
    overrides.check_used(specs)
    return specs, warnings


def _overrides(body: SubmitBody) -> Overrides:
    values: dict[str, Any] = {name: getattr(body, name) for name in OVERRIDE_NAMES}
    stages = values["stages"]
    if stages is not None:
        values["stages"] = parse_stages(stages if isinstance(stages, str) else ",".join(stages))
    size = values["size"]
    if isinstance(size, str):
        values["size"] = parse_size(size)
    if body.on is not None and body.backend is not None and body.on != body.backend:
        raise InputError(f"on ({body.on!r}) and backend ({body.backend!r}) differ: give one pin")
    return Overrides(**values, backend=body.on or body.backend)


def _expand_pack(
    ctx: ApiContext, pack: PackUpload, overrides: Overrides
) -> tuple[list[JobSpec], list[str]]:
    """The pack's files in a private folder, expanded as the CLI expands them; messages name
    the uploaded files, not the folder."""
    if pack.text is None and pack.sidecar is None:
        raise InputError("pack: give its text, its JSON sidecar, or both")
    with tempfile.TemporaryDirectory(prefix="stablenew-pack-") as tmp:
        folder = Path(tmp)
        for name, text in pack.wildcards.items():
            if not name or "/" in name or "\\" in name or name.startswith("."):
                raise InputError(f"pack.wildcards: {name!r} is not a file name")
            (folder / "wildcards").mkdir(exist_ok=True)
            (folder / "wildcards" / f"{name.removesuffix('.txt')}.txt").write_text(text)
        if pack.text is not None:
            (folder / f"{pack.name}.txt").write_text(pack.text)
        if pack.sidecar is not None:
            (folder / f"{pack.name}.json").write_bytes(orjson.dumps(pack.sidecar))
        path = folder / (f"{pack.name}.txt" if pack.text is not None else f"{pack.name}.json")
        prefix = str(folder) + os.sep
        try:
            expansion = ctx.services.intents.pack(path, overrides)
        except PackError as exc:
            raise PackError(str(exc).replace(prefix, "")) from exc
        except InputError as exc:
            raise InputError(str(exc).replace(prefix, "")) from exc
        warnings = [w.replace(prefix, "") for w in expansion.pack.warnings]
        return expansion.specs, warnings


# -- listing -----------------------------------------------------------------------------------


def _cursor(key: tuple[float | str, ...]) -> str:
    """Where the next page begins: the last job's place in the order, not a count of rows
    (which a job cancelled or added between two pages would shift)."""
    return base64.urlsafe_b64encode(orjson.dumps(key)).decode().rstrip("=")


def _key(cursor: str | None) -> tuple[float | str, ...] | None:
    if not cursor:
        return None
    try:
        key = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        if (
            isinstance(key, list)
            and key
            and all(isinstance(v, int | float | str) and not isinstance(v, bool) for v in key)
        ):
            return tuple(key)
    except (binascii.Error, ValueError):
        pass
    raise InputError("cursor: not a cursor this API gave out")


@router.get("", response_model=JobsPage)
def list_jobs(
    ctx: Ctx,
    status: Annotated[list[str] | None, Query(description="QUEUED, RUNNING, ... (repeat)")] = None,
    search: Annotated[str | None, Query(max_length=500)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    cursor: str | None = None,
    history: Annotated[bool, Query(description="Finished jobs, newest first")] = False,
) -> JobsPage:
    """Running first, then the queue in run order, then finished jobs newest first (or the
    history alone). `next_cursor` fetches the next page; null on the last one."""
    wanted = None
    if status:
        names = [n.strip().upper() for value in status for n in value.split(",") if n.strip()]
        try:
            wanted = [JobStatus(n) for n in names]
        except ValueError as exc:
            choices = ", ".join(s.value for s in JobStatus)
            raise InputError(f"status: choose from {choices}") from exc
    page = ctx.services.jobs.page_after(wanted, search, limit, _key(cursor), history=history)
    return JobsPage(
        jobs=[JobView.of(j) for j in page.jobs],
        next_cursor=_cursor(page.next) if page.next is not None else None,
        total=page.total,
    )


@router.get("/{job_id}", response_model=JobView, responses={404: {"description": "No such job"}})
def get_job(job_id: str, ctx: Ctx) -> JobView:
    """The job: the same object as `stablenew queue show ID --json`."""
    return JobView.of(find_job(ctx, job_id))


@router.get("/{job_id}/events")
def job_events(
    job_id: str,
    ctx: Ctx,
    after: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
) -> list[dict[str, Any]]:
    """The job's lifecycle trail from the store's log (after `seq`)."""
    job = find_job(ctx, job_id)
    return [event_data(e) for e in ctx.services.jobs.events_since(after, job.id, limit)]


@router.get(
    "/{job_id}/preview",
    response_class=Response,
    responses={200: {"content": {"image/png": {}, "image/jpeg": {}}}, 404: {}},
)
def preview(job_id: str, ctx: Ctx) -> Response:
    """The latest live preview of a running job (a progress event's `preview` number says
    when a new one exists); 404 when there is none."""
    job = find_job(ctx, job_id)
    latest = ctx.services.previews.latest(job.id)
    if latest is None:
        raise HTTPException(404, f"no live preview for job {job.id[:8]}")
    kind = "image/jpeg" if latest.image[:3] == b"\xff\xd8\xff" else "image/png"
    if latest.image[:4] == b"RIFF":
        kind = "image/webp"
    return Response(
        latest.image,
        media_type=kind,
        headers={"X-Preview-Number": str(latest.number), "Cache-Control": "no-store"},
    )


# -- changing one job --------------------------------------------------------------------------


@router.post(
    "/{job_id}/cancel",
    response_model=JobView,
    responses={409: {"model": JobView, "description": "Finished already (the job)"}},
)
def cancel(job_id: str, ctx: Ctx, body: Empty | None = None) -> Any:
    """A queued job is CANCELLED at once; a running one is stopped (it answers RUNNING with
    `cancel_requested` and ends CANCELLED shortly); a finished one is 409 with the job."""
    job = find_job(ctx, job_id)
    if job.status.finished:
        return job_response(job, 409)
    before = ctx.services.jobs.cancel_job(job.id, source="api")
    now = ctx.services.jobs.get_job(job.id)  # finished between the look-up and the cancel: 409
    return job_response(now, 409 if before.finished else 200)


@router.post("/{job_id}/retry", status_code=201, response_model=Submitted)
def retry(job_id: str, ctx: Ctx, body: RetryBody | None = None) -> Submitted:
    """Queue a FAILED or CANCELLED job again as a new job (with a changed spec, if given)."""
    job = find_job(ctx, job_id)
    if body is not None and body.spec is not None:
        new = ctx.services.jobs.retry_with(job.id, body.spec, source="api")
    else:
        new = ctx.services.jobs.retry(job.id, source="api")
    return Submitted(ids=[new])


@router.put("/{job_id}/spec", response_model=JobView)
def edit(job_id: str, body: EditBody, ctx: Ctx) -> JobView:
    """Replace a QUEUED job's spec (409 once it runs); recorded as an event."""
    job = find_job(ctx, job_id)
    ctx.services.jobs.edit(job.id, body.spec, source="api")
    return JobView.of(ctx.services.jobs.get_job(job.id))


@router.post("/{job_id}/move", response_model=JobView)
def move(job_id: str, body: MoveBody, ctx: Ctx) -> JobView:
    """Move a queued job: `{"to": "up"|"down"|"front"|"back"}` or `{"position": N}`."""
    if (body.to is None) == (body.position is None):
        raise InputError("give either to (up, down, front, back) or position")
    job = find_job(ctx, job_id)
    if body.to is not None:
        ctx.services.jobs.move(job.id, body.to)
    else:
        assert body.position is not None
        ctx.services.jobs.move_to(job.id, body.position)
    return JobView.of(ctx.services.jobs.get_job(job.id))


@router.delete("/{job_id}", response_model=Count)
def remove(job_id: str, ctx: Ctx) -> Count:
    """Remove a job that is not running (409 when it runs). Its images stay on disk."""
    job = find_job(ctx, job_id)
    ctx.services.jobs.remove(job.id)
    return Count(count=1)


# -- many jobs ---------------------------------------------------------------------------------


@router.post("/cancel-pending", response_model=Count)
def cancel_pending(ctx: Ctx, body: Empty | None = None) -> Count:
    """Cancel every QUEUED job; the running one goes on."""
    return Count(count=ctx.services.jobs.cancel_all_pending(source="api"))


@router.post("/clear-finished", response_model=Count)
def clear_finished(ctx: Ctx, body: Empty | None = None) -> Count:
    """Remove every finished job (the history empties; images stay on disk)."""
    return Count(count=ctx.services.jobs.clear_finished())


@router.post("/remove", response_model=Count)
def remove_where(body: RemoveBody, ctx: Ctx) -> Count:
    """Remove every job in these statuses (never a running one), e.g. undo a pack."""
    return Count(count=ctx.services.jobs.remove_where([JobStatus(s) for s in body.statuses]))
