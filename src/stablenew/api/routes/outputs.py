"""/api/v1/jobs/{id}/files: a job's images and manifests, from its run folder and nowhere else.

A name is resolved inside the job's run folder (symlinks followed) and served only if the
result is still inside it: `../`, an absolute path or a link that leads out is refused.
`/thumbs/NAME` is an image of the run folder made small (WebP), for a gallery's grid: made once
per file and size, kept in memory (bounded), cached by the browser (a finished file never
changes).
"""

from __future__ import annotations

import io
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Response
from fastapi.responses import FileResponse
from PIL import Image, UnidentifiedImageError

from stablenew.api.context import Ctx, find_job
from stablenew.api.strict_json import StrictJSONRoute
from stablenew.jobs.job import Job

router = APIRouter(prefix="/api/v1/jobs", tags=["outputs"], route_class=StrictJSONRoute)


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


THUMB_SIZES = (128, 256, 512)
THUMB_CACHE_BYTES = 32 * 2**20


class Thumbnails:
    """Small WebP copies of images, least recently used dropped past `limit` bytes."""

    def __init__(self, limit: int = THUMB_CACHE_BYTES) -> None:
        self.limit = limit
        self._lock = threading.Lock()
        self._items: OrderedDict[tuple[str, int, int], bytes] = OrderedDict()
        self._bytes = 0

    def get(self, path: Path, size: int) -> bytes:
        stat = path.stat()
        key = (str(path), stat.st_mtime_ns, size)
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
        data = _thumbnail(path, size)
        with self._lock:
            if key not in self._items:
                self._items[key] = data
                self._bytes += len(data)
            while self._bytes > self.limit and self._items:
                _, dropped = self._items.popitem(last=False)
                self._bytes -= len(dropped)
        return data


def _thumbnail(path: Path, size: int) -> bytes:
    try:
        with Image.open(path) as image:
            image.draft("RGB", (size, size))  # JPEG: decode at a fraction of the size
            small = image.convert("RGB")
            small.thumbnail((size, size))
            out = io.BytesIO()
            small.save(out, format="WEBP", quality=80, method=4)
            return out.getvalue()
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise HTTPException(415, f"{path.name} is not an image") from exc


THUMBNAILS = Thumbnails()


@router.get(
    "/{job_id}/thumbs/{name:path}",
    response_class=Response,
    responses={200: {"content": {"image/webp": {}}}, 400: {}, 404: {}, 415: {}},
)
def get_thumbnail(
    job_id: str,
    name: str,
    ctx: Ctx,
    size: Annotated[int, Query(description="Longest side: 128, 256 or 512")] = 256,
) -> Response:
    """An image of the job's run folder made small (WebP, longest side `size`)."""
    if size not in THUMB_SIZES:
        raise HTTPException(422, f"size: choose from {', '.join(map(str, THUMB_SIZES))}")
    path = inside(run_folder(find_job(ctx, job_id)), name)
    return Response(
        THUMBNAILS.get(path, size),
        media_type="image/webp",
        headers={"Cache-Control": "private, max-age=86400"},
    )
