"""What composing a job needs besides submitting it: the defaults, input images, a PNG to read a
job from, a preset. Files come as base64 inside JSON (a browser's upload).

- `GET /api/v1/spec/defaults`: a JobSpec's defaults (what a field left out becomes).
- `GET /api/v1/failure-reasons`: an error envelope's `reason` in words.

- `POST /api/v1/inputs`: an image a job starts from goes into the home's input store (by
  content); the answer is the `InputImage` a JobSpec's `inputs` lists.
- `GET /api/v1/inputs/{sha256}`: such an image back (to show what a queued job starts from).
- `POST /api/v1/import/png`: the job that made a PNG (StableNew's own chunk, else the A1111
  infotext), to load into compose. Nothing is queued.
- `POST /api/v1/import/preset`: a preset's settings as JobSpec fields. Nothing is queued.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
import tempfile
from pathlib import Path
from typing import Any

import orjson
from fastapi import APIRouter, HTTPException, Response

from stablenew.api.context import ApiContext, Ctx
from stablenew.api.models import FileUpload, ImportedPng, PresetFields, PresetUpload
from stablenew.api.strict_json import StrictJSONRoute
from stablenew.app import studio
from stablenew.errors import InputError, PackError, SpecError
from stablenew.jobs.input_store import InputStore, image_input
from stablenew.jobs.presets import load_preset
from stablenew.jobs.spec import InputImage, JobSpec
from stablenew.jobs.status import REASON_TEXT

router = APIRouter(prefix="/api/v1", tags=["compose"], route_class=StrictJSONRoute)
SHA256 = re.compile(r"^[0-9a-f]{64}$")
MAX_PIXELS = 64 * 2**20  # an image larger than 8192x8192 is not one a job starts from


def decode(upload: FileUpload, field: str = "data") -> bytes:
    """The bytes of an upload (base64, or a data: URI); a 422 naming the file otherwise."""
    text = upload.data.strip()
    if text.startswith("data:"):
        text = text.partition(",")[2]
    try:
        data = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InputError(f"{field}: {upload.name} is not base64 ({exc})") from exc
    if not data:
        raise InputError(f"{field}: {upload.name} is empty")
    return data


def read_input(data: bytes, name: str) -> InputImage:
    """An uploaded image as a job input, checked as `stablenew run --image` checks a file."""
    image = image_input(data, name).image
    width, height = image.size
    if width * height > MAX_PIXELS:
        raise InputError(f"{name}: {width}x{height} is too large an image to start from")
    return image


def _store(ctx: ApiContext) -> InputStore:
    store = ctx.services.intents.inputs
    if store is None:
        raise InputError("this StableNew has no input store (no home): cannot take images")
    return store


@router.get("/spec/defaults")
def spec_defaults() -> dict[str, Any]:
    """Every JobSpec field at its default (the prompt empty), as a composer starts from."""
    return JobSpec.model_construct().model_dump(mode="json")


@router.get("/failure-reasons")
def failure_reasons() -> dict[str, str]:
    """An error envelope's `reason` in words, as every door says it ("the backend ran out of
    memory"): a one-line reason is "STAGE image N: " and these words, or else the first line
    of the root cause."""
    return {reason.value: text for reason, text in REASON_TEXT.items()}


@router.post("/inputs", status_code=201, response_model=InputImage)
def upload_input(body: FileUpload, ctx: Ctx) -> InputImage:
    """Keep an image a job will start from (by its content: the same image twice is kept
    once). Put the answer in a JobSpec's `inputs`, with `images` equal to their number."""
    data = decode(body)
    image = read_input(data, Path(body.name).name or "image")
    _store(ctx).put(data)
    return image


@router.get(
    "/inputs/{sha256}",
    response_class=Response,
    responses={200: {"content": {"image/png": {}, "image/jpeg": {}, "image/webp": {}}}},
)
def get_input(sha256: str, ctx: Ctx) -> Response:
    """An input image by its sha256 (as a JobSpec's `inputs` names it)."""
    if not SHA256.match(sha256):
        raise HTTPException(400, "refused: an input image is named by its sha256 (64 hex digits)")
    data = _store(ctx).get(sha256)
    if data is None:
        raise HTTPException(404, f"no input image {sha256[:12]} in this home")
    kind = "image/png"
    if data[:3] == b"\xff\xd8\xff":
        kind = "image/jpeg"
    elif data[:4] == b"RIFF":
        kind = "image/webp"
    return Response(data, media_type=kind, headers={"Cache-Control": "private, max-age=86400"})


@router.post("/import/png", response_model=ImportedPng)
def import_png(body: FileUpload, ctx: Ctx) -> ImportedPng:
    """The job that made this PNG, to compose from (nothing is queued): StableNew's own
    images give their spec exactly, others are read from their A1111 infotext."""
    name = Path(body.name).name or "the PNG"
    reused = studio.reuse_png_data(decode(body), name, store=ctx.services.jobs.inputs)
    return ImportedPng(
        spec=reused.spec,
        source="infotext" if reused.source == "infotext" else "stablenew",
        warnings=reused.warnings,
        unparsed=reused.unparsed,
        origin=reused.origin,
    )


@router.post("/import/preset", response_model=PresetFields)
def import_preset(body: PresetUpload, ctx: Ctx) -> PresetFields:
    """A preset's settings (NAME.json, as `stablenew run --preset` reads it) as JobSpec
    fields, to apply to what is composed. Nothing is queued."""
    with tempfile.TemporaryDirectory(prefix="stablenew-preset-") as tmp:
        path = Path(tmp) / f"{body.name}.json"
        path.write_bytes(orjson.dumps(body.sidecar))
        prefix = tmp + os.sep
        try:
            preset = load_preset(path)
        except (PackError, SpecError) as exc:
            raise type(exc)(str(exc).replace(prefix, "")) from exc
        return PresetFields(
            name=preset.name,
            fields=orjson.loads(orjson.dumps(preset.fields, default=str)),
            warnings=[w.replace(prefix, "") for w in preset.warnings],
        )
