"""/agent-scheduler/v1: the paths and shapes of the agent-scheduler extension, on StableNew's
queue, so clients written for it work unchanged (shared/reference/agent_scheduler_api.md).

Every StableNew job is a task here (those queued from the CLI too). Its conventions are kept:
"not found" is 200 with `{"success": false, "message": "Task not found"}`; statuses are
pending, running, done, failed, interrupted; list timestamps are epoch milliseconds. Bookmarks
and renames have nowhere to live in a JobSpec, so they answer `success: false`. The one
difference a client may meet: a POST must say `Content-Type: application/json` (see
api/security.py), also the ones without a body.
"""

from __future__ import annotations

import base64
import io
import zipfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, Body, Query
from fastapi.responses import JSONResponse, Response
from PIL import Image
from pydantic import BaseModel

from stablenew.api.a1111 import Endpoint, translate
from stablenew.api.context import ApiContext, Ctx
from stablenew.api.routes.a1111 import queue_request
from stablenew.api.strict_json import StrictJSONRoute
from stablenew.app.views import iso_utc
from stablenew.errors import InputError, StableNewError
from stablenew.jobs.job import Job
from stablenew.jobs.status import JobStatus

PREFIX = "/agent-scheduler/v1"
router = APIRouter(prefix=PREFIX, tags=["agent-scheduler"], route_class=StrictJSONRoute)

TASK_STATUS = {
    JobStatus.QUEUED: "pending",
    JobStatus.RUNNING: "running",
    JobStatus.COMPLETED: "done",
    JobStatus.FAILED: "failed",
    JobStatus.CANCELLED: "interrupted",
}
HISTORY_STATUS = {
    "done": [JobStatus.COMPLETED],
    "failed": [JobStatus.FAILED],
    "interrupted": [JobStatus.CANCELLED],
}
NOT_FOUND = {"success": False, "message": "Task not found"}
DOOR_FIELDS = ("checkpoint", "vae", "callback_url")


class QueueTaskResponse(BaseModel):
    task_id: str


def _ok(message: str) -> dict[str, Any]:
    return {"success": True, "message": message}


def _no(message: str) -> dict[str, Any]:
    return {"success": False, "message": message}


def _ms(moment: datetime | None) -> int | None:
    if moment is None:
        return None
    aware = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return int(aware.timestamp() * 1000)


def _door(job: Job) -> dict[str, Any]:
    door = job.spec.metadata.get("agent_scheduler")
    return door if isinstance(door, dict) else {}


def params_of(job: Job) -> dict[str, Any]:
    """The request the task was queued with (A1111's fields, plus `checkpoint`); for a job
    queued another way, its JobSpec in those words."""
    a1111 = job.spec.metadata.get("a1111")
    spec = job.spec
    if isinstance(a1111, dict) and isinstance(a1111.get("request"), dict):
        params = {k: v for k, v in a1111["request"].items() if k not in DOOR_FIELDS}
    else:
        params = {
            "prompt": spec.prompt,
            "negative_prompt": spec.negative_prompt,
            "seed": spec.seed,
            "sampler_name": spec.sampler,
            "scheduler": spec.scheduler,
            "steps": spec.steps,
            "cfg_scale": spec.cfg_scale,
            "width": spec.width,
            "height": spec.height,
            "batch_size": 1,
            "n_iter": spec.images,
        }
    params["checkpoint"] = _door(job).get("checkpoint") or spec.model
    return params


def task_of(job: Job, position: int | None, epoch_ms: bool) -> dict[str, Any]:
    stamp = _ms if epoch_ms else iso_utc
    if job.status == JobStatus.COMPLETED:
        result: str | None = orjson.dumps({"images": job.result.images}).decode()
    elif job.error is not None:
        result = orjson.dumps({"error": job.error.one_line()}).decode()
    else:
        result = None
    door = _door(job)
    return {
        "id": job.id,
        "api_task_id": None,
        "api_task_callback": door.get("callback_url"),
        "name": door.get("name"),
        "type": "img2img" if job.spec.inputs else "txt2img",
        "status": TASK_STATUS[job.status],
        "params": params_of(job),
        "priority": job.priority,
        "position": position,
        "result": result,
        "bookmarked": False,
        "created_at": stamp(job.created_at),
        "updated_at": stamp(job.finished_at or job.started_at or job.created_at),
    }


def _find(ctx: ApiContext, task_id: str) -> Job | None:
    try:
        return ctx.services.jobs.get_job(task_id)
    except StableNewError:
        return None


def _position(ctx: ApiContext, job_id: str) -> int | None:
    order = [j.id for j in ctx.services.jobs.pending()]
    return order.index(job_id) if job_id in order else None


# -- submitting --------------------------------------------------------------------------------


def _submit(ctx: ApiContext, endpoint: Endpoint, body: dict[str, Any]) -> QueueTaskResponse:
    door = {k: body.get(k) for k in DOOR_FIELDS}
    for key, value in door.items():
        if value is not None and not isinstance(value, str):
            raise InputError(f"{key}: expected text")
    request = {k: v for k, v in body.items() if k not in DOOR_FIELDS}
    job_id, _warnings = queue_request(
        ctx,
        endpoint,
        request,
        extra_metadata={"agent_scheduler": {k: v for k, v in door.items() if v}},
        model=door["checkpoint"],
        vae=door["vae"],
    )
    return QueueTaskResponse(task_id=job_id)


@router.post("/queue/txt2img", response_model=QueueTaskResponse)
def queue_txt2img(body: Annotated[dict[str, Any], Body()], ctx: Ctx) -> QueueTaskResponse:
    """An A1111 txt2img body plus `checkpoint`, `vae`, `callback_url`."""
    return _submit(ctx, "txt2img", body)


@router.post("/queue/img2img", response_model=QueueTaskResponse)
def queue_img2img(body: Annotated[dict[str, Any], Body()], ctx: Ctx) -> QueueTaskResponse:
    """An A1111 img2img body plus `checkpoint`, `vae`, `callback_url`."""
    return _submit(ctx, "img2img", body)


# -- reading -----------------------------------------------------------------------------------


@router.get("/queue")
def queue_status(
    ctx: Ctx,
    limit: Annotated[int, Query(ge=0, le=10_000)] = 20,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> dict[str, Any]:
    jobs = ctx.services.jobs
    running = jobs.page([JobStatus.RUNNING], limit=1).jobs
    pending = jobs.pending()
    tasks = [task_of(j, offset + i, True) for i, j in enumerate(pending[offset : offset + limit])]
    return {
        "current_task_id": running[0].id if running else None,
        "pending_tasks": tasks,
        "total_pending_tasks": len(pending),
        "paused": jobs.paused() is not None,
    }


@router.get("/history")
def history(
    ctx: Ctx,
    status: Annotated[
        Literal["all", "done", "failed", "interrupted", "bookmarked"] | None, Query()
    ] = None,
    limit: Annotated[int, Query(ge=0, le=10_000)] = 20,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> dict[str, Any]:
    if status == "bookmarked":
        return {"tasks": [], "total": 0}
    wanted = HISTORY_STATUS.get(
        status or "all",
        [
            JobStatus.COMPLETED,
            JobStatus.FAILED,
            JobStatus.CANCELLED,
        ],
    )
    page = ctx.services.jobs.page(wanted, None, limit, offset, history=True)
    return {"tasks": [task_of(j, None, True) for j in page.jobs], "total": page.total}


@router.get("/task/{task_id}")
def get_task(task_id: str, ctx: Ctx) -> dict[str, Any]:
    job = _find(ctx, task_id)
    if job is None:
        return NOT_FOUND
    return {"success": True, "data": task_of(job, _position(ctx, job.id), False)}


@router.get("/task/{task_id}/position")
def task_position(task_id: str, ctx: Ctx) -> dict[str, Any]:
    job = _find(ctx, task_id)
    if job is None:
        return NOT_FOUND
    return {
        "success": True,
        "data": {"status": TASK_STATUS[job.status], "position": _position(ctx, job.id)},
    }


def _infotext(path: Path) -> str:
    try:
        with Image.open(path) as image:
            return str(image.info.get("parameters", ""))
    except OSError:
        return ""


@router.get("/results/{task_id}", deprecated=True)
@router.get("/task/{task_id}/results")
def task_results(task_id: str, ctx: Ctx, zip: bool = False) -> Any:
    job = _find(ctx, task_id)
    if job is None:
        return NOT_FOUND
    if job.status != JobStatus.COMPLETED:
        return _no(f"Task is {TASK_STATUS[job.status]}")
    files = [Path(p) for p in job.result.images if Path(p).is_file()]
    if zip:
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as archive:
            for path in files:
                archive.write(path, path.name)
        return Response(
            buffer.getvalue(),
            media_type="application/zip",
            headers={"Content-Disposition": f"attachment; filename=results-{job.id}.zip"},
        )
    data = [
        {
            "image": "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode(),
            "infotext": _infotext(path),
        }
        for path in files
    ]
    return {"success": True, "data": data}


@router.get("/samplers", response_model=list[str])
def samplers(ctx: Ctx) -> list[str]:
    return [str(s["name"]) for s in ctx.services.backend.client().samplers()]


@router.get("/sd-models", response_model=list[str])
def sd_models(ctx: Ctx) -> list[str]:
    return [str(m["title"]) for m in ctx.services.backend.client().sd_models()]


@router.get("/export")
def export(
    ctx: Ctx,
    limit: Annotated[int, Query(ge=0, le=100_000)] = 1000,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> list[dict[str, Any]]:
    pending = ctx.services.jobs.pending()[offset : offset + limit]
    return [task_of(j, None, True) for j in pending]


# -- changing ----------------------------------------------------------------------------------


class UpdateTask(BaseModel):
    name: str | None = None
    checkpoint: str | None = None
    params: dict[str, Any] | None = None


@router.put("/task/{task_id}")
def update_task(task_id: str, body: UpdateTask, ctx: Ctx) -> dict[str, Any]:
    """A pending task's parameters and checkpoint (409-free: a running one says why not)."""
    job = _find(ctx, task_id)
    if job is None:
        return NOT_FOUND
    if job.status != JobStatus.QUEUED:
        return _no(f"Task is {TASK_STATUS[job.status]}: only a pending task can be changed")
    params = {**params_of(job), **(body.params or {})}
    params.pop("checkpoint", None)
    door = {**_door(job)}
    if body.name is not None:
        door["name"] = body.name
    if body.checkpoint is not None:
        door["checkpoint"] = body.checkpoint
    endpoint: Endpoint = "img2img" if job.spec.inputs else "txt2img"
    if endpoint == "img2img" and body.params is None:
        spec = job.spec.model_copy(
            update={
                "model": door.get("checkpoint") or job.spec.model,
                "metadata": {**job.spec.metadata, "agent_scheduler": door},
            }
        )
    elif endpoint == "img2img":
        return _no("img2img parameters cannot be changed here: queue it again")
    else:
        spec = translate(
            endpoint,
            params,
            extra_metadata={"agent_scheduler": door},
            model=door.get("checkpoint"),
            vae=door.get("vae"),
        ).spec
    ctx.services.jobs.edit(job.id, spec, source="api")
    return _ok("Task updated.")


@router.post("/run/{task_id}", deprecated=True)
@router.post("/task/{task_id}/run")
def run_task(task_id: str, ctx: Ctx) -> dict[str, Any]:
    job = _find(ctx, task_id)
    if job is None:
        return NOT_FOUND
    if job.status == JobStatus.RUNNING:
        return _no("Task is running")
    if job.status != JobStatus.QUEUED:
        return _no(f"Task is {TASK_STATUS[job.status]}")
    ctx.services.jobs.move(job.id, "front")
    return _ok("Task is scheduled to run next")


@router.post("/requeue/{task_id}", deprecated=True)
@router.post("/task/{task_id}/requeue")
def requeue_task(task_id: str, ctx: Ctx) -> dict[str, Any]:
    job = _find(ctx, task_id)
    if job is None:
        return NOT_FOUND
    if job.status in (JobStatus.FAILED, JobStatus.CANCELLED):
        ctx.services.jobs.retry(job.id, source="api")
    else:
        ctx.services.jobs.submit_many([job.spec], job.priority, source="api")
    return _ok("Task requeued")


@router.post("/task/requeue-failed")
def requeue_failed(ctx: Ctx) -> dict[str, Any]:
    failed = ctx.services.jobs.list_jobs([JobStatus.FAILED], limit=100_000)
    if not failed:
        return _no("No failed tasks")
    for job in failed:
        ctx.services.jobs.retry(job.id, source="api")
    return _ok(f"Requeued {len(failed)} failed tasks")


@router.post("/delete/{task_id}", deprecated=True)
@router.delete("/task/{task_id}")
def delete_task(task_id: str, ctx: Ctx) -> dict[str, Any]:
    """A running task is interrupted (it ends interrupted); any other one is deleted."""
    job = _find(ctx, task_id)
    if job is None:
        return _ok("Task deleted")  # as agent-scheduler: deleting nothing succeeds
    if job.status == JobStatus.RUNNING:
        ctx.services.jobs.cancel_job(job.id, source="api")
        return _ok("Task interrupted")
    try:
        ctx.services.jobs.remove(job.id)
    except StableNewError:  # it started meanwhile: interrupt it instead
        ctx.services.jobs.cancel_job(job.id, source="api")
        return _ok("Task interrupted")
    return _ok("Task deleted")


@router.post("/move/{task_id}/{over_id}", deprecated=True)
@router.post("/task/{task_id}/move/{over_id}")
def move_task(task_id: str, over_id: str, ctx: Ctx) -> dict[str, Any]:
    job = _find(ctx, task_id)
    if job is None:
        return NOT_FOUND
    if job.status != JobStatus.QUEUED:
        return _no(f"Task is {TASK_STATUS[job.status]}")
    if over_id == "top":
        ctx.services.jobs.move(job.id, "front")
        return _ok("Task moved to top")
    if over_id == "bottom":
        ctx.services.jobs.move(job.id, "back")
        return _ok("Task moved to bottom")
    position = _position(ctx, over_id)
    if position is None:
        return NOT_FOUND
    ctx.services.jobs.move_to(job.id, position)
    return _ok("Task moved")


def _not_kept(task_id: str, ctx: ApiContext, what: str) -> dict[str, Any]:
    if _find(ctx, task_id) is None:
        return NOT_FOUND
    return _no(f"StableNew does not keep {what}")


@router.post("/bookmark/{task_id}", deprecated=True)
@router.post("/task/{task_id}/bookmark")
def bookmark(task_id: str, ctx: Ctx) -> dict[str, Any]:
    return _not_kept(task_id, ctx, "bookmarks")


@router.post("/unbookmark/{task_id}", deprecated=True)
@router.post("/task/{task_id}/unbookmark")
def unbookmark(task_id: str, ctx: Ctx) -> dict[str, Any]:
    return _not_kept(task_id, ctx, "bookmarks")


@router.post("/rename/{task_id}", deprecated=True)
@router.post("/task/{task_id}/rename")
def rename(task_id: str, ctx: Ctx, name: str = "") -> dict[str, Any]:
    job = _find(ctx, task_id)
    if job is None:
        return NOT_FOUND
    if job.status != JobStatus.QUEUED:
        return _no("StableNew names only pending tasks")
    door = {**_door(job), "name": name}
    spec = job.spec.model_copy(update={"metadata": {**job.spec.metadata, "agent_scheduler": door}})
    ctx.services.jobs.edit(job.id, spec, source="api")
    return _ok("Task renamed.")


@router.post("/pause", deprecated=True)
@router.post("/queue/pause")
def pause(ctx: Ctx) -> dict[str, Any]:
    ctx.services.jobs.pause("paused through the agent-scheduler API", source="api")
    return _ok("Queue paused.")


@router.post("/resume", deprecated=True)
@router.post("/queue/resume")
def resume(ctx: Ctx) -> dict[str, Any]:
    ctx.services.jobs.resume(source="api")
    return _ok("Queue resumed.")


@router.post("/queue/clear")
def clear_queue(ctx: Ctx) -> dict[str, Any]:
    ctx.services.jobs.remove_where([JobStatus.QUEUED])
    return _ok("Queue cleared.")


@router.post("/history/clear")
def clear_history(ctx: Ctx) -> dict[str, Any]:
    ctx.services.jobs.clear_finished()
    return _ok("History cleared.")


class ImportBody(BaseModel):
    content: str


@router.post("/import")
def import_queue(body: ImportBody, ctx: Ctx) -> Any:
    """Tasks as `/export` gives them (a JSON list): each is queued again from its params."""
    try:
        tasks = orjson.loads(body.content)
        if not isinstance(tasks, list):
            raise ValueError("not a list")
        specs, images = [], []
        for task in tasks:
            params = dict(task.get("params") or {})
            checkpoint = params.pop("checkpoint", None)
            endpoint: Endpoint = "img2img" if task.get("type") == "img2img" else "txt2img"
            door = {"checkpoint": checkpoint, "name": task.get("name")}
            done = translate(
                endpoint,
                params,
                extra_metadata={"agent_scheduler": {k: v for k, v in door.items() if v}},
                model=checkpoint if isinstance(checkpoint, str) else None,
            )
            specs.append(done.spec)
            images += done.inputs
        if images:  # an img2img task's init images, kept as a submit keeps them
            inputs = ctx.services.intents.inputs
            if inputs is None:
                raise InputError("this StableNew has no input store: cannot take init images")
            inputs.put_all(images)
        ctx.services.jobs.submit_many(specs, source="api")
    except (ValueError, TypeError, AttributeError, StableNewError) as exc:
        return JSONResponse(_no(f"Import Failed: {exc}"))
    return _ok("Queue imported")
