"""/api/v1/a1111/txt2img|img2img: an unmodified A1111 request body queues an equivalent job.

Scripts written for A1111 point here and get a job id back at once (A1111 would answer with
the images after generating them; follow the job with the event stream, fetch its files).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body

from stablenew.api.a1111 import Endpoint, translate
from stablenew.api.context import ApiContext, Ctx
from stablenew.api.models import Submitted
from stablenew.api.strict_json import StrictJSONRoute
from stablenew.errors import InputError

router = APIRouter(prefix="/api/v1/a1111", tags=["a1111"], route_class=StrictJSONRoute)

A1111Body = Annotated[
    dict[str, Any],
    Body(description="A1111's StableDiffusionTxt2ImgProcessingAPI / Img2ImgProcessingAPI body"),
]


def queue_request(
    ctx: ApiContext,
    endpoint: Endpoint,
    body: dict[str, Any],
    *,
    extra_metadata: dict[str, Any] | None = None,
    model: str | None = None,
    vae: str | None = None,
    priority: int = 0,
) -> tuple[str, list[str]]:
    """Translate, keep the init images in the home's input store, queue one job."""
    done = translate(endpoint, body, extra_metadata=extra_metadata, model=model, vae=vae)
    inputs = ctx.services.intents.inputs
    if done.inputs:
        if inputs is None:
            raise InputError("this StableNew has no input store: cannot take init images")
        inputs.put_all(done.inputs)
    job_id = ctx.services.jobs.submit_many([done.spec], priority, source="api")[0]
    return job_id, done.warnings


@router.post("/txt2img", status_code=201, response_model=Submitted)
def txt2img(body: A1111Body, ctx: Ctx) -> Submitted:
    """One job: `batch_size` x `n_iter` images, A1111's defaults for what the body leaves out,
    `override_settings.sd_model_checkpoint` as the model. Fields StableNew cannot honour are
    kept in the job's metadata and named in `warnings`."""
    job_id, warnings = queue_request(ctx, "txt2img", body)
    return Submitted(ids=[job_id], warnings=warnings)


@router.post("/img2img", status_code=201, response_model=Submitted)
def img2img(body: A1111Body, ctx: Ctx) -> Submitted:
    """One job from `init_images` (base64 or data URIs), resized to `width` x `height` as A1111
    does (resize_mode 0 or 1). Inpainting (`mask`) and image URLs are refused (422)."""
    job_id, warnings = queue_request(ctx, "img2img", body)
    return Submitted(ids=[job_id], warnings=warnings)
