"""/api/v1/jobs/{id}/files: a job's images and manifests, from its run folder and nowhere else.

A name is resolved inside the job's run folder (symlinks followed) and served only if the
result is still inside it: `../`, an absolute path or a link that leads out is refused.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, HTTPException
from fastapi.responses import FileResponse

from stablenew.api.context import Ctx, find_job
from stablenew.jobs.job import Job

router = APIRouter(prefix="/api/v1/jobs", tags=["outputs"])


def run_folder(job: Job) -> Path:
    folder = job.result.run_dir or (job.checkpoint.run_dir if job.checkpoint else None)
    if not folder:
        raise HTTPException(404, f"job {job.id[:8]} has no run folder yet")
    return Path(folder).resolve()


def inside(folder: Path, name: str) -> Path:
    """The file `name` names inside `folder`, or an HTTP error (400 outside, 404 missing)."""
    parts = Path(name).parts
    if not name or Path(name).is_absolute() or ".." in parts or "\x00" in name:
        raise HTTPException(400, "refused: a name inside the job's run folder only")
    path = (folder / name).resolve()
    if not path.is_relative_to(folder):
        raise HTTPException(400, "refused: a name inside the job's run folder only")
    if not path.is_file():
        raise HTTPException(404, f"no file {name!r} in the job's run folder")
    return path


@router.get("/{job_id}/files", response_model=list[str])
def list_files(job_id: str, ctx: Ctx) -> list[str]:
    """Every file of the job's run folder (images, manifests, events.jsonl, failures/...)."""
    folder = run_folder(find_job(ctx, job_id))
    if not folder.is_dir():
        return []
    return sorted(
        str(p.relative_to(folder))
        for p in folder.rglob("*")
        if p.is_file() and p.resolve().is_relative_to(folder)  # no link that leads out
    )


@router.get(
    "/{job_id}/files/{name:path}",
    response_class=FileResponse,
    responses={200: {"content": {"image/png": {}, "application/json": {}}}, 400: {}, 404: {}},
)
def get_file(job_id: str, name: str, ctx: Ctx) -> FileResponse:
    """One file of the job's run folder by name, e.g. an image or its manifest."""
    path = inside(run_folder(find_job(ctx, job_id)), name)
    return FileResponse(path)
